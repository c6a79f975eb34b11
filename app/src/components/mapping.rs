//! The mapping step for one header layout: each of the files' columns chosen as one of Code
//! Import's or ignored, and the first rows as they will be staged.

use leptos::prelude::*;

use crate::{
    components::scroll_box::ScrollBox,
    csv::{Column, ColumnMapping, COLUMNS},
};

/// One decision for every file whose header is `header`: a `<select>` per column, labelled by
/// the column's header text, its options the field names (and *ignore*), filled in with
/// `initial`; under them the first `rows` as the choices stage them. `remembered`: the
/// mapping is the one chosen last time, shown folded with a *change* button.
#[component]
pub fn MappingGroup(
    /// Tells the group's selects apart from another group's.
    group: usize,
    files: Vec<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    initial: ColumnMapping,
    /// The mapping is applied (the files were checked with it).
    applied: bool,
    remembered: bool,
    on_apply: impl Fn(ColumnMapping) + Send + Sync + 'static,
) -> impl IntoView {
    let choice = RwSignal::new(initial.clone());
    let on_apply = Callback::new(on_apply);
    let open = RwSignal::new(!remembered);
    let width = header.len();
    let problem = move || {
        choice.with(|c| match c.duplicate() {
            Some(column) => Some(format!("{} is chosen for two columns", column.name())),
            None if !c.has_code() => Some("choose the column that holds the code".to_owned()),
            None => None,
        })
    };
    let count = files.len();
    view! {
        <fieldset class="mapping" data-testid="mapping-group" data-files=files.join(",")>
            <legend>
                {format!("Columns of {} ({} file{})", files.join(", "), count, if count == 1 { "" } else { "s" })}
            </legend>
            {remembered.then(|| view! {
                <p data-testid="mapped-as-last-time">
                    "Mapped as last time "
                    <button class="link" on:click=move |_| open.update(|o| *o = !*o)>"(change)"</button>
                </p>
            })}
            <Show when=move || open.get()>
                <div class="mapping-choices">
                    {header.iter().enumerate().map(|(i, name)| {
                        let id = format!("map-{group}-{i}");
                        let label = if name.trim().is_empty() { format!("column {}", i + 1) } else { name.trim().to_owned() };
                        view! {
                            <div class="field">
                                <label for=id.clone()>{label}</label>
                                <select id=id data-testid="mapping-choice" on:change=move |event| {
                                    let value = event_target_value(&event);
                                    let column = COLUMNS.into_iter().find(|c| c.name() == value);
                                    choice.update(|c| {
                                        c.fields.resize(width, None);
                                        c.fields[i] = column;
                                    });
                                }>
                                    <option value="" selected=move || choice.with(|c| c.fields.get(i).copied().flatten().is_none())>"ignore"</option>
                                    {COLUMNS.into_iter().map(|column| view! {
                                        <option value=column.name()
                                            selected=move || choice.with(|c| c.fields.get(i).copied().flatten() == Some(column))>
                                            {column.name()}
                                        </option>
                                    }).collect_view()}
                                </select>
                            </div>
                        }
                    }).collect_view()}
                </div>
                <StagedPreview choice rows=rows.clone()/>
                {move || problem().map(|p| view! { <p class="error">{p}</p> })}
                <button class="primary" data-testid="apply-mapping" prop:disabled=move || problem().is_some()
                    on:click=move |_| { open.set(false); on_apply.run(choice.get_untracked()); }>
                    {if count == 1 { "Use this mapping" } else { "Use this mapping for these files" }}
                </button>
            </Show>
            {(applied && !remembered).then(|| view! { <p class="muted" data-testid="mapping-applied">"Mapped."</p> })}
        </fieldset>
    }
}

/// The first rows as `choice` stages them: one column per chosen field, in file order.
#[component]
fn StagedPreview(choice: RwSignal<ColumnMapping>, rows: Vec<Vec<String>>) -> impl IntoView {
    view! {
        {move || {
            let chosen: Vec<(usize, Column)> = choice
                .with(|c| c.fields.iter().enumerate().filter_map(|(i, f)| f.map(|f| (i, f))).collect());
            let rows = rows.clone();
            view! {
                <ScrollBox label="The first rows as they will be staged">
                <table class="mapping-preview" data-testid="mapping-preview">
                    <caption class="muted">"The first rows as they will be staged"</caption>
                    <thead><tr>{chosen.iter().map(|(_, c)| view! { <th scope="col">{c.name()}</th> }).collect_view()}</tr></thead>
                    <tbody>
                        {rows.iter().map(|row| {
                            let cells: Vec<String> = chosen.iter()
                                .map(|(i, _)| crate::csv::unprotect(row.get(*i).map(String::as_str).unwrap_or("")).to_owned())
                                .collect();
                            view! { <tr>{cells.into_iter().map(|v| view! { <td>{v}</td> }).collect_view()}</tr> }
                        }).collect_view()}
                    </tbody>
                </table>
                </ScrollBox>
            }
        }}
    }
}
