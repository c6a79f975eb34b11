//! The duplicate check's figures drawn: a stacked bar per file and one for the batch, and the
//! table of the same figures per file — in the four disjoint kinds of row that the review's cards
//! count. Shared by the review page and the review below a finished upload.

use leptos::prelude::*;

use crate::{
    components::{format::format_count, scroll_box::ScrollBox},
    duplicates::{CheckFigures, DuplicateStats, RowFilter, RowStatus},
};

/// The four kinds of staged row, as the cards, the chart and the per-file table name and count
/// them — disjoint, so that they add up to the staged rows: each with its label, its colour's
/// class and its card's test id.
pub const SEGMENTS: [(RowStatus, &str, &str, &str); 4] = [
    (RowStatus::Clean, "Clean: will be inserted", "seg-clean", "figure-clean"),
    (RowStatus::InternalDuplicate, "Internal duplicates only", "seg-internal", "figure-internal-only"),
    (RowStatus::DatabaseDuplicate, "Database duplicates only", "seg-database", "figure-database-only"),
    (RowStatus::BothDuplicate, "Both internal and database", "seg-both", "figure-both"),
];

/// How many of `stats`' rows are of the kind `status`.
pub fn segment_count(stats: &DuplicateStats, status: RowStatus) -> i64 {
    RowFilter::Only(status).count(stats)
}

/// One stacked bar per file and one for the batch, in the cards' four kinds.
#[component]
pub fn Chart(figures: CheckFigures) -> impl IntoView {
    let bar = |label: String, stats: DuplicateStats| {
        let summary = SEGMENTS
            .iter()
            .map(|(status, name, ..)| format!("{name} {}", stats.percent(segment_count(&stats, *status))))
            .collect::<Vec<_>>()
            .join(", ");
        let total = stats.total_rows.max(1) as f64;
        view! {
            <div class="bar-row">
                <span class="bar-label" title=label.clone()>{label.clone()}</span>
                <div class="bar" role="img" aria-label=format!("{label}: {summary}")>
                    {SEGMENTS.iter().map(|(status, name, class, _)| {
                        let count = segment_count(&stats, *status);
                        let width = format!("width: {:.3}%", count as f64 * 100.0 / total);
                        view! { <span class=format!("segment {class}") style=width title=format!("{name}: {}", format_count(count))></span> }
                    }).collect_view()}
                </div>
            </div>
        }
    };
    view! {
        <div class="chart" data-testid="chart">
            <div class="legend">
                {SEGMENTS.iter().map(|(_, name, class, _)| view! {
                    <span class="legend-item"><span class=format!("swatch {class}")></span>{*name}</span>
                }).collect_view()}
            </div>
            {bar("All files".to_owned(), figures.overall.clone())}
            {figures.files.into_iter().map(|file| bar(file.source_file, file.stats)).collect_view()}
        </div>
    }
}

/// The figures per file in the cards' four kinds (each row adds up), with the batch's totals
/// in the footer.
#[component]
pub fn FileTable(figures: CheckFigures) -> impl IntoView {
    let cells = |stats: &DuplicateStats| {
        view! {
            <td class="num">{format_count(stats.total_rows)}</td>
            <td class="num">{format_count(stats.internal_only())}</td>
            <td class="num">{format_count(stats.database_only())}</td>
            <td class="num">{format_count(stats.both)}</td>
            <td class="num">{format_count(stats.clean_count)}</td>
            <td class="num">{stats.percent(stats.clean_count)}</td>
        }
    };
    view! {
        <ScrollBox label="Figures per file">
        <table class="file-figures" data-testid="file-figures">
            <thead>
                <tr>
                    <th scope="col">"File"</th>
                    <th scope="col" class="num">"Rows"</th>
                    <th scope="col" class="num">"Internal only"</th>
                    <th scope="col" class="num">"Database only"</th>
                    <th scope="col" class="num">"Both"</th>
                    <th scope="col" class="num">"Clean"</th>
                    <th scope="col" class="num">"Clean %"</th>
                </tr>
            </thead>
            <tbody>
                {figures.files.iter().map(|file| view! {
                    <tr data-testid="file-figures-row"><td>{file.source_file.clone()}</td>{cells(&file.stats)}</tr>
                }).collect_view()}
            </tbody>
            <tfoot>
                <tr data-testid="file-figures-total"><th scope="row">"Total"</th>{cells(&figures.overall)}</tr>
            </tfoot>
        </table>
        </ScrollBox>
    }
}
