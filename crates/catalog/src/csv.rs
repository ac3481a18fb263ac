//! A small RFC 4180 CSV reader: quoted fields (with `""` escapes, commas and line breaks inside),
//! CRLF or LF line ends, and errors that point at a line and a field.
//!
//! Hand-written because the catalog is the only CSV the product reads and a dependency would cost
//! more than these lines.

/// One parsed record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) line: usize,
    pub(crate) fields: Vec<String>,
}

/// A syntax error at a position in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based field number within the record.
    pub(crate) column: usize,
    pub(crate) message: &'static str,
}

/// Parses all records; blank lines are skipped.
pub(crate) fn parse(text: &str) -> Result<Vec<Record>, SyntaxError> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        if chars.peek().is_none() {
            break;
        }
        // A record is a run of fields up to an unquoted line end.
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut at_field_start = true;
        loop {
            let column = fields.len() + 1;
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some('"') if at_field_start => {
                    at_field_start = false;
                    let open_line = line;
                    loop {
                        match chars.next() {
                            None => {
                                return Err(SyntaxError {
                                    line: open_line,
                                    column,
                                    message: "unterminated quoted field",
                                });
                            }
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    match chars.peek() {
                        None | Some(',') | Some('\n') | Some('\r') => {}
                        Some(_) => {
                            return Err(SyntaxError {
                                line,
                                column,
                                message: "unexpected character after a closing quote",
                            });
                        }
                    }
                }
                Some('"') => {
                    return Err(SyntaxError {
                        line,
                        column,
                        message: "quote inside an unquoted field (quote the whole field)",
                    });
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(c) => {
                    at_field_start = false;
                    field.push(c);
                }
            }
        }
        let blank = fields.len() == 1 && fields[0].is_empty();
        if !blank {
            records.push(Record {
                line: start_line,
                fields,
            });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn plain_and_empty_fields() {
        assert_eq!(
            fields("a,b,c\n1,,3\n"),
            vec![vec!["a", "b", "c"], vec!["1", "", "3"]]
        );
        assert_eq!(fields("a,b"), vec![vec!["a", "b"]]);
        assert_eq!(fields("a,\n"), vec![vec!["a", ""]]);
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let text = "p,\"Claude 2.0, 2.1\",\"say \"\"hi\"\"\",\"two\nlines\"\nx,y,z,w\n";
        let recs = parse(text).unwrap();
        assert_eq!(
            recs[0].fields,
            vec!["p", "Claude 2.0, 2.1", "say \"hi\"", "two\nlines"]
        );
        assert_eq!(recs[0].line, 1);
        // The embedded line break counts, so the next record starts on line 3.
        assert_eq!(recs[1].line, 3);
        assert_eq!(fields("\"\",\"\"\n"), vec![vec!["", ""]]);
    }

    #[test]
    fn crlf_and_blank_lines() {
        assert_eq!(
            fields("a,b\r\n\r\nc,d\r\n"),
            vec![vec!["a", "b"], vec!["c", "d"]]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("a,b\nc,\"open\n").unwrap_err();
        assert_eq!(
            (e.line, e.column, e.message),
            (2, 2, "unterminated quoted field")
        );
        let e = parse("a,b\nc,\"x\"y\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 2));
        assert_eq!(e.message, "unexpected character after a closing quote");
        let e = parse("a,b\nc,d\"e\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 2));
    }
}
