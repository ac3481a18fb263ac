//! The task categories a request can be classified under.

use std::fmt;
use std::str::FromStr;

macro_rules! closed_vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The accepted spellings, comma separated, for error messages.
            pub fn accepted() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {:?}; accepted: {}",
                        $what, other, Self::accepted()
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use closed_vocabulary;

closed_vocabulary!(
    /// What the request was for, as classified by the router.
    Task, "task", {
        Programming => "programming",
        Roleplay => "roleplay",
        Marketing => "marketing",
        Seo => "seo",
        Technology => "technology",
        Science => "science",
        Translation => "translation",
        Legal => "legal",
        Finance => "finance",
        Health => "health",
        Academia => "academia",
        Trivia => "trivia",
        Other => "other",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_task() {
        for t in Task::ALL {
            assert_eq!(t.as_str().parse::<Task>(), Ok(*t));
        }
        assert_eq!(Task::ALL.len(), 13);
    }

    #[test]
    fn unknown_task_lists_accepted_values() {
        let err = "coding".parse::<Task>().unwrap_err();
        assert!(err.starts_with("unknown task \"coding\"; accepted: programming, roleplay"));
    }
}
