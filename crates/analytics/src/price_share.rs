//! Price against share: each model's blended price (spend per million tokens) and its share of
//! the period's tokens, with the price/share Pareto frontier marked: a model is on the frontier
//! when no other model is at most as expensive and has at least its share (one of the two
//! strictly).

/// A model's figures in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFigures {
    pub model: String,
    pub tokens: u64,
    /// Micro-USD.
    pub cost: i64,
    pub apps: u64,
}

/// One published point.
#[derive(Debug, Clone, PartialEq)]
pub struct PricePoint {
    pub model: String,
    pub tokens: u64,
    pub share: f64,
    pub usd_per_mtok: f64,
    pub apps: u64,
    pub frontier: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceShare {
    /// Cheapest first.
    pub points: Vec<PricePoint>,
    /// Tokens of models without recorded spend.
    pub other_tokens: u64,
    pub total_tokens: u64,
}

/// Shares, prices and the frontier of published per-model figures (each a sum of publishable
/// cells, see `modelshare_query::privacy`; the total is their sum). Models without spend (free,
/// or cost not reported) have no price and are counted with `other_tokens`, which is therefore
/// made of publishable cells too.
pub fn price_share(figures: &[ModelFigures]) -> PriceShare {
    let total: u64 = figures.iter().map(|f| f.tokens).sum();
    let mut points: Vec<PricePoint> = figures
        .iter()
        .filter(|f| f.tokens > 0 && f.cost > 0)
        .map(|f| PricePoint {
            model: f.model.clone(),
            tokens: f.tokens,
            share: f.tokens as f64 / total as f64,
            usd_per_mtok: f.cost as f64 / f.tokens as f64,
            apps: f.apps,
            frontier: false,
        })
        .collect();
    points.sort_by(|a, b| {
        a.usd_per_mtok
            .total_cmp(&b.usd_per_mtok)
            .then(b.share.total_cmp(&a.share))
            .then(a.model.cmp(&b.model))
    });
    let mut best = f64::NEG_INFINITY;
    for p in &mut points {
        if p.share > best {
            p.frontier = true;
            best = p.share;
        }
    }
    let published: u64 = points.iter().map(|p| p.tokens).sum();
    PriceShare {
        points,
        other_tokens: total - published,
        total_tokens: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(model: &str, tokens: u64, cost: i64, apps: u64) -> ModelFigures {
        ModelFigures {
            model: model.into(),
            tokens,
            cost,
            apps,
        }
    }

    #[test]
    fn frontier_by_hand() {
        // Prices per Mtok (cost micro-USD / tokens): a 1, b 2, c 2, d 5, e 0.5, f free. The
        // figures are published ones already: m/e is plotted whatever its app count.
        let ps = price_share(&[
            f("m/a", 1_000_000, 1_000_000, 9),
            f("m/b", 3_000_000, 6_000_000, 9),
            f("m/c", 2_000_000, 4_000_000, 9),
            f("m/d", 2_000_000, 10_000_000, 9),
            f("m/e", 1_000_000, 500_000, 1),
            f("m/f", 1_000_000, 0, 9),
        ]);
        let got: Vec<(&str, f64, bool)> = ps
            .points
            .iter()
            .map(|p| (p.model.as_str(), p.usd_per_mtok, p.frontier))
            .collect();
        assert_eq!(
            got,
            vec![
                ("m/e", 0.5, true),
                ("m/a", 1.0, false),
                ("m/b", 2.0, true),
                ("m/c", 2.0, false),
                ("m/d", 5.0, false)
            ]
        );
        assert_eq!(ps.total_tokens, 10_000_000);
        assert_eq!(ps.other_tokens, 1_000_000);
        assert_eq!(ps.points[2].share, 0.3);
    }
}
