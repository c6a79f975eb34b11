//! What the review shows of the staged rows: which rows (a status filter, a file, a code), which
//! page, and the row to land on — as a value that round-trips through the page's query string,
//! so that a view can be shared as a link.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DuplicateStats, RowStatus};

/// Which rows the review lists, by their duplicate flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowFilter {
    /// Every row that is a duplicate of any kind: what ops review.
    #[default]
    Duplicates,
    /// The rows of one status.
    Only(RowStatus),
    All,
}

impl RowFilter {
    /// Every filter, in the order the page offers them.
    pub const ALL: [RowFilter; 6] = [
        RowFilter::Duplicates,
        RowFilter::Only(RowStatus::InternalDuplicate),
        RowFilter::Only(RowStatus::DatabaseDuplicate),
        RowFilter::Only(RowStatus::BothDuplicate),
        RowFilter::Only(RowStatus::Clean),
        RowFilter::All,
    ];

    /// Its name in the query string.
    pub fn slug(self) -> &'static str {
        match self {
            RowFilter::Duplicates => "duplicates",
            RowFilter::Only(RowStatus::InternalDuplicate) => "internal",
            RowFilter::Only(RowStatus::DatabaseDuplicate) => "database",
            RowFilter::Only(RowStatus::BothDuplicate) => "both",
            RowFilter::Only(RowStatus::Clean) => "clean",
            RowFilter::All => "all",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.slug() == slug)
    }

    /// Its name on the page.
    pub fn label(self) -> &'static str {
        match self {
            RowFilter::Duplicates => "Duplicates of any kind",
            RowFilter::Only(RowStatus::InternalDuplicate) => "Internal duplicates only",
            RowFilter::Only(RowStatus::DatabaseDuplicate) => "Database duplicates only",
            RowFilter::Only(RowStatus::BothDuplicate) => "Both internal and database",
            RowFilter::Only(RowStatus::Clean) => "Clean rows",
            RowFilter::All => "All rows",
        }
    }

    /// How many of the rows `stats` counts pass the filter.
    pub fn count(self, stats: &DuplicateStats) -> i64 {
        match self {
            RowFilter::Duplicates => stats.total_rows - stats.clean_count,
            RowFilter::Only(RowStatus::Clean) => stats.clean_count,
            RowFilter::Only(RowStatus::InternalDuplicate) => stats.internal_only(),
            RowFilter::Only(RowStatus::DatabaseDuplicate) => stats.database_only(),
            RowFilter::Only(RowStatus::BothDuplicate) => stats.both,
            RowFilter::All => stats.total_rows,
        }
    }

    /// The filter as the preview's SQL takes it: duplicates only, and the exact flags
    /// (internal_dup, existing_dup) if one status.
    pub fn flags(self) -> (bool, Option<(bool, bool)>) {
        match self {
            RowFilter::Duplicates => (true, None),
            RowFilter::Only(status) => (false, Some(status.flags())),
            RowFilter::All => (false, None),
        }
    }
}

/// A search by code: the code exactly, or the codes that start with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeSearch {
    pub code: String,
    pub prefix: bool,
}

/// One view of the staged rows: the rows (filter, file, code) and where in them (a page, a
/// keyset cursor, or a row to land on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReviewView {
    pub filter: RowFilter,
    /// Rows of the source file of this name only.
    pub file: Option<String>,
    pub search: Option<CodeSearch>,
    /// The page, from 1; with `after` or `before` the number it is shown as.
    pub page: i64,
    /// The page after the row with this number (the next page's keyset cursor).
    pub after: Option<i64>,
    /// The page before the row with this number.
    pub before: Option<i64>,
    /// The page that holds this row, which is marked.
    pub row: Option<i64>,
}

impl ReviewView {
    /// The view a query string names (`get` reads one parameter); what is missing or not
    /// understood takes its default.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        let number = |key: &str| get(key).and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n > 0);
        let text = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        Self {
            filter: get("status").and_then(|s| RowFilter::from_slug(&s)).unwrap_or_default(),
            file: text("file"),
            search: text("code").map(|code| CodeSearch {
                code: code.trim().to_owned(),
                prefix: get("match").as_deref() == Some("prefix"),
            }),
            page: number("page").unwrap_or(1),
            after: number("after"),
            before: number("before"),
            row: number("row"),
        }
    }

    /// The query string of this view of `merchant`'s rows (defaults left out), escaped.
    pub fn query_string(&self, merchant: Uuid) -> String {
        let mut pairs = vec![("merchant", merchant.to_string())];
        if self.filter != RowFilter::default() {
            pairs.push(("status", self.filter.slug().to_owned()));
        }
        if let Some(file) = &self.file {
            pairs.push(("file", file.clone()));
        }
        if let Some(search) = &self.search {
            pairs.push(("code", search.code.clone()));
            if search.prefix {
                pairs.push(("match", "prefix".to_owned()));
            }
        }
        if self.page > 1 {
            pairs.push(("page", self.page.to_string()));
        }
        for (key, value) in [("after", self.after), ("before", self.before), ("row", self.row)] {
            if let Some(value) = value {
                pairs.push((key, value.to_string()));
            }
        }
        pairs.iter().map(|(key, value)| format!("{key}={}", escape(value))).collect::<Vec<_>>().join("&")
    }

    /// The first page of the rows this view lists.
    pub fn first_page(&self) -> Self {
        Self { filter: self.filter, file: self.file.clone(), search: self.search.clone(), page: 1, ..Self::default() }
    }

    /// The page that holds `row` among all of the merchant's rows.
    pub fn landing_on(row: i64) -> Self {
        Self { filter: RowFilter::All, page: 1, row: Some(row), ..Self::default() }
    }
}

/// `value` escaped for a query string: everything but RFC 3986's unreserved characters as
/// `%XX` of its UTF-8 bytes.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(query: &str) -> ReviewView {
        let map: HashMap<String, String> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), unescape(v)))
            .collect();
        ReviewView::from_query(|key| map.get(key).cloned())
    }

    fn unescape(value: &str) -> String {
        let bytes = value.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_empty_query_shows_the_duplicates_from_the_first_page() {
        let view = ReviewView::from_query(|_| None);
        assert_eq!(view.filter, RowFilter::Duplicates);
        assert_eq!((view.page, view.file, view.search, view.row), (1, None, None, None));
    }

    #[test]
    fn a_view_round_trips_through_its_query_string() {
        let merchant = Uuid::nil();
        let view = ReviewView {
            filter: RowFilter::Only(RowStatus::BothDuplicate),
            file: Some("März & co/a b.csv".into()),
            search: Some(CodeSearch { code: "AB+1=2?".into(), prefix: true }),
            page: 300,
            after: Some(14_950),
            before: None,
            row: Some(14_960),
        };
        let query = view.query_string(merchant);
        assert!(!query.contains(' ') && !query.contains("&co/") && !query.contains("März"), "{query}");
        assert_eq!(parse(&query), view);
        assert_eq!(parse(&ReviewView::default().query_string(merchant)), ReviewView { page: 1, ..Default::default() });
    }

    #[test]
    fn every_filter_reads_back_from_its_slug_and_counts_its_share_of_the_figures() {
        let stats = DuplicateStats {
            total_rows: 100,
            internal_duplicates: 10,
            database_duplicates: 30,
            both: 4,
            clean_count: 64,
        };
        for filter in RowFilter::ALL {
            assert_eq!(RowFilter::from_slug(filter.slug()), Some(filter));
        }
        let counts: Vec<i64> = RowFilter::ALL.iter().map(|f| f.count(&stats)).collect();
        assert_eq!(counts, [36, 6, 26, 4, 64, 100]);
        assert_eq!(counts[1] + counts[2] + counts[3], counts[0], "the kinds of duplicate add up");
        assert_eq!(counts[0] + counts[4], counts[5]);
    }

    #[test]
    fn nonsense_in_the_query_falls_back_to_the_defaults() {
        let view = parse("status=weird&page=-3&row=x&code=%20%20");
        assert_eq!(view, ReviewView { page: 1, ..Default::default() });
    }
}
