//! The columns a file may have, as the upload page lists them, with a template to start from.

use leptos::prelude::*;

use crate::csv::{template_csv, Column, COLUMNS};

/// The accepted columns, one line each (required or not, what it holds, an example), and a
/// button that downloads a template CSV.
#[component]
pub fn ColumnRules() -> impl IntoView {
    // `code` first: it is the one a file must have.
    let order = std::iter::once(Column::Code).chain(COLUMNS.into_iter().filter(|c| *c != Column::Code));
    view! {
        <details class="column-rules" data-testid="column-rules" open>
            <summary>"Which columns a file may have"</summary>
            <ul>
                {order.map(|column| {
                    let rule = column.rule();
                    view! {
                        <li data-testid="column-rule" data-column=column.name()>
                            <code>{column.name()}</code>
                            {if rule.required { " — required: " } else { " — optional: " }}
                            {rule.holds} ", e.g. " <code>{rule.example}</code>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <p class="muted">
                "Headers match whatever their case and spacing; other columns are listed and ignored. "
                "Comma, semicolon or tab; UTF-8 or UTF-16 (other encodings are chosen after picking the file)."
            </p>
            <button class="link" data-testid="download-template"
                on:click=|_| crate::staging::client::download("code-import-template.csv", &template_csv())>
                "Download a template CSV"
            </button>
        </details>
    }
}
