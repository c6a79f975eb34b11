//! The chosen files of an upload, one row each: what the browser's validation found (columns,
//! lines, rows to stage, skipped and rejected, and why), its encoding when it is not UTF-8, the
//! rejected rows to download, and how far its upload has come; with the batch's totals.

use leptos::{prelude::*, task::spawn_local};

use crate::{
    components::{
        format::{counted, format_bytes, format_count},
        scroll_box::ScrollBox,
    },
    csv::{layout_key, FileProblem, FileReport, ReadOptions, TextEncoding},
    staging::{client, StagedFile},
};

/// One chosen file and what is known of it so far.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub checked_bytes: u64,
    pub report: Option<FileReport>,
    pub checksum: Option<String>,
    pub read_error: Option<String>,
    pub rows_sent: i64,
    /// Why this file's upload stopped (the server refused a chunk); the other files go on.
    pub upload_error: Option<String>,
    /// The user chose to stage it again although the batch holds it already.
    pub restage: bool,
    /// How the user said the file is to be read (its encoding, when it is not UTF-8).
    pub options: ReadOptions,
    /// How often the file was set to be checked again: a check started before the latest
    /// change is stale, and its result is dropped.
    pub checks: u32,
    /// Its mapping is the one remembered for its layout, applied without asking.
    pub remembered: bool,
}

impl FileEntry {
    /// A file just chosen: nothing known of it but its name and size.
    pub fn chosen(name: String, size: u64) -> Self {
        Self {
            name,
            size,
            checked_bytes: 0,
            report: None,
            checksum: None,
            read_error: None,
            rows_sent: 0,
            upload_error: None,
            restage: false,
            options: ReadOptions::default(),
            checks: 0,
            remembered: false,
        }
    }

    /// Forgets what validation found, so the file is checked anew (a later result of an earlier
    /// check is dropped: `checks` moved on).
    pub fn check_again(&mut self) {
        self.checks += 1;
        self.report = None;
        self.read_error = None;
        self.checked_bytes = 0;
    }

    /// Valid, and its columns decided: a file with columns to map waits for the mapping.
    pub fn is_valid(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.is_valid() && !r.needs_mapping()) && self.read_error.is_none()
    }

    /// The same file (size and checksum) staged in the merchant's batch already, if it is.
    pub fn already_staged<'a>(&self, staged: &'a [StagedFile]) -> Option<&'a StagedFile> {
        let checksum = self.checksum.as_deref()?;
        staged.iter().find(|s| s.is(self.size as i64, checksum))
    }

    /// Whether the upload sends it: valid, with rows to stage, and not staged already unless
    /// the user chose so.
    pub fn to_send(&self, staged: &[StagedFile]) -> bool {
        self.is_valid() && !self.nothing_to_stage() && (self.restage || self.already_staged(staged).is_none())
    }

    /// Read to its end with no row to stage: only a header, or every row skipped or rejected.
    pub fn nothing_to_stage(&self) -> bool {
        self.read_error.is_none()
            && self
                .report
                .as_ref()
                .is_some_and(|r| r.problem == Some(FileProblem::NoRows) || (r.problem.is_none() && r.rows_staged == 0))
    }

    pub fn is_checked(&self) -> bool {
        self.report.is_some() || self.read_error.is_some()
    }

    /// The file's header layout when its columns are to be mapped: its header names no code
    /// column or columns Code Import does not know ([`FileReport::needs_mapping`]), or the user
    /// mapped it.
    pub fn mapping_layout(&self) -> Option<String> {
        let report = self.report.as_ref()?;
        ((report.needs_mapping() || self.options.mapping.is_some()) && !report.header.is_empty())
            .then(|| layout_key(&report.header))
    }

    /// Whether the page asks for the file's encoding: it is not UTF-8, or one was chosen.
    pub fn asks_encoding(&self) -> bool {
        self.options.encoding.is_some()
            || self.report.as_ref().is_some_and(|r| matches!(r.problem, Some(FileProblem::NotUtf8 { .. })))
    }
}

/// One row per file: what validation found, and how far its upload is.
#[component]
pub fn FilesTable(
    files: RwSignal<Vec<FileEntry>>,
    remove: impl Fn(String) + Copy + Send + Sync + 'static,
    read_as: impl Fn(String, ReadOptions) + Copy + Send + Sync + 'static,
    /// Files may be added and removed (no upload has started).
    #[prop(into)]
    choosing: Signal<bool>,
    /// An upload runs.
    #[prop(into)]
    uploading: Signal<bool>,
    /// An upload runs or has finished: each file's own progress says more than "staged already".
    #[prop(into)]
    sending: Signal<bool>,
    staged: RwSignal<Vec<StagedFile>>,
) -> impl IntoView {
    let set_restage = move |name: &str, restage: bool| {
        files.update(|all| {
            if let Some(entry) = all.iter_mut().find(|f| f.name == name) {
                entry.restage = restage;
            }
        })
    };
    view! {
        <ScrollBox label="Files">
        <table class="files" data-testid="files-table">
            <thead>
                <tr>
                    <th scope="col">"File"</th>
                    <th scope="col" class="num">"Size"</th>
                    <th scope="col">"Columns"</th>
                    <th scope="col" class="num" title="Lines after the header: rows to stage, skipped and rejected, and lines inside quoted fields">"Lines"</th>
                    <th scope="col" class="num">"To stage"</th>
                    <th scope="col" class="num">"Skipped"</th>
                    <th scope="col" class="num">"Rejected"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                </tr>
            </thead>
            <tbody>
                {move || files.get().into_iter().map(|entry| {
                    let name = entry.name.clone();
                    let status = file_status(&entry);
                    let nothing = entry.nothing_to_stage();
                    let (rejects_report, options) = (entry.report.clone().unwrap_or_default(), entry.options.clone());
                    // While its upload runs or once it is done, the file's own progress says more.
                    let sending = sending.get();
                    let already = staged.with(|list| entry.already_staged(list).map(StagedFile::described))
                        .filter(|_| !sending);
                    let restage = entry.restage;
                    let restage_name = name.clone();
                    let report = entry.report.clone().unwrap_or_default();
                    let checked = entry.report.is_some();
                    let errors = report.first_errors.clone();
                    let rejected = report.rows_rejected;
                    let problem_row = entry.report.as_ref().and_then(|r| r.problem.clone()).map(|p| p.to_string())
                        .or(entry.read_error.clone());
                    let unknown = (!report.unknown_columns.is_empty())
                        .then(|| format!("ignored: {}", report.unknown_columns.join(", ")));
                    let delimiter = match report.delimiter.as_str() { "\t" => "tab", ";" => "semicolon", "," => "comma", _ => "" };
                    let (remove_name, download_name, file_name) = (name.clone(), name.clone(), name.clone());
                    let encoding_choice = entry.asks_encoding().then(|| {
                        let (options, chosen) = (entry.options.clone(), entry.options.encoding);
                        let preview = report.preview.join("\n");
                        let name = name.clone();
                        view! {
                            <EncodingChoice file=name.clone() chosen preview
                                on_choose=move |encoding| read_as(name.clone(), ReadOptions { encoding, ..options.clone() })/>
                        }
                    });
                    let read_in = (checked && !report.encoding.is_utf8() || report.sep_line).then(|| {
                        let sep = if report.sep_line { ", sep= line" } else { "" };
                        format!("{}{sep}", report.encoding)
                    });
                    view! {
                        <tr data-testid="file-row" data-file=name.clone() class:excluded=problem_row.is_some() || nothing>
                            <td>{name.clone()}</td>
                            <td class="num">{format_bytes(entry.size)}</td>
                            <td>
                                {report.columns.join(", ")}
                                {checked.then(|| view! { <span class="muted">" (" {delimiter} ")"</span> })}
                                {read_in.map(|r| view! { <div class="muted" data-testid="read-as">{r}</div> })}
                                {unknown.map(|u| view! { <div class="muted">{u}</div> })}
                            </td>
                            <td class="num">
                                <span data-testid="data-lines">{checked.then(|| format_count(report.data_lines))}</span>
                                {(report.continuation_lines > 0).then(|| view! {
                                    <div class="muted">{lines_inside_quotes(report.continuation_lines)}</div>
                                })}
                            </td>
                            <td class="num" data-testid="rows-staged">{checked.then(|| format_count(report.rows_staged))}</td>
                            <td class="num">
                                <span data-testid="rows-skipped">{checked.then(|| format_count(report.rows_skipped()))}</span>
                                {skip_reasons(&report).map(|why| view! { <div class="muted" data-testid="skip-reasons">{why}</div> })}
                            </td>
                            <td class="num" data-testid="rows-rejected">{checked.then(|| format_count(rejected))}</td>
                            <td data-testid="file-status">
                                {match &already {
                                    Some(described) if restage => format!("Staged already {described}: will be staged again"),
                                    Some(described) => format!("Staged already {described}: skipped"),
                                    None => status,
                                }}
                                {already.is_some().then(|| view! {
                                    <label class="restage">
                                        <input type="checkbox" data-testid="restage" prop:checked=restage
                                            prop:disabled=move || uploading.get()
                                            on:change=move |event| set_restage(&restage_name, event_target_checked(&event))/>
                                        "Stage it again"
                                    </label>
                                })}
                            </td>
                            <td>
                                <Show when=move || choosing.get()>
                                    {
                                        let remove_name = remove_name.clone();
                                        let label = format!("Remove {remove_name}");
                                        view! { <button class="link" aria-label=label on:click=move |_| remove(remove_name.clone())>"Remove"</button> }
                                    }
                                </Show>
                            </td>
                        </tr>
                        {(problem_row.is_some() || !errors.is_empty() || encoding_choice.is_some()).then(|| view! {
                            <tr class="details">
                                <td colspan="9">
                                    {encoding_choice}
                                    {problem_row.map(|p| view! { <p class="error">{format!("{file_name} is excluded: {p}")}</p> })}
                                    <ul class="row-errors" data-testid="row-errors">
                                        {errors.into_iter().map(|e| view! {
                                            <li>{format!("{}:{}: {}", file_name, e.line, e.reason)}</li>
                                        }).collect_view()}
                                    </ul>
                                    {(rejected > 0).then(|| view! {
                                        <button class="link" on:click=move |_| {
                                            let (name, report, options) = (download_name.clone(), rejects_report.clone(), options.clone());
                                            spawn_local(async move {
                                                if let Err(problem) = client::download_rejects(&name, &report, &options).await {
                                                    files.update(|all| {
                                                        if let Some(entry) = all.iter_mut().find(|f| f.name == name) {
                                                            entry.read_error = Some(problem.clone());
                                                        }
                                                    });
                                                }
                                            });
                                        }>
                                            "Download all " {format_count(rejected)} " rejected rows"
                                        </button>
                                    })}
                                </td>
                            </tr>
                        })}
                    }
                }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
    }
}

/// The encoding of a file that is not UTF-8, chosen by the user, with its first lines decoded
/// so they see whether the choice reads right.
#[component]
fn EncodingChoice(
    file: String,
    chosen: Option<TextEncoding>,
    preview: String,
    on_choose: impl Fn(Option<TextEncoding>) + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="encoding" data-testid="encoding-choice">
            <label class="field">
                "Encoding"
                <select data-testid="encoding" on:change=move |event| {
                    on_choose(TextEncoding::from_label(&event_target_value(&event)).filter(|e| !e.is_utf8()))
                }>
                    <option value="" selected=chosen.is_none()>"Choose the encoding it was saved in"</option>
                    {TextEncoding::CHOICES.into_iter().map(|encoding| view! {
                        <option value=encoding.label() selected=chosen == Some(encoding)>{encoding.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            <p class="muted">{format!("The first lines of {file}, read as {}:", chosen.unwrap_or_default())}</p>
            <pre class="preview" data-testid="encoding-preview">{preview}</pre>
        </div>
    }
}

/// "1 line inside quoted fields": the lines of rows that span lines, besides their first.
fn lines_inside_quotes(lines: i64) -> String {
    format!("{} line{} inside quoted fields", format_count(lines), if lines == 1 { "" } else { "s" })
}

/// What the status column says about a file.
fn file_status(entry: &FileEntry) -> String {
    if let Some(problem) = &entry.read_error {
        return format!("Unreadable: {problem}");
    }
    if let Some(problem) = &entry.upload_error {
        return format!("Stopped: {problem}");
    }
    match &entry.report {
        None => format!("Checking… {}%", percent(entry.checked_bytes as i64, entry.size as i64)),
        Some(report) if report.problem == Some(FileProblem::NoRows) => {
            "Nothing to stage: the file has a header and no rows".to_owned()
        }
        Some(report) if !report.is_valid() => "Excluded".to_owned(),
        Some(report) if report.needs_mapping() => "Columns to map (below)".to_owned(),
        // Never shown: the counts account for every line of a file read to its end.
        Some(report) if report.lines_accounted() != report.data_lines => {
            format!("Counts do not add up ({} of {} lines)", report.lines_accounted(), report.data_lines)
        }
        Some(report) if report.rows_staged == 0 && report.rows_rejected > 0 && report.rows_skipped() == 0 => {
            "Nothing to stage: every row is rejected".to_owned()
        }
        Some(report) if report.rows_staged == 0 => "Nothing to stage: every row is skipped or rejected".to_owned(),
        Some(report) if entry.rows_sent >= report.rows_staged && entry.rows_sent > 0 => "Staged".to_owned(),
        Some(report) if entry.rows_sent > 0 => format!("Uploading {}%", percent(entry.rows_sent, report.rows_staged)),
        Some(report) if report.rows_rejected > 0 => {
            format!("Valid · {} rejected", counted(report.rows_rejected, "row", "rows"))
        }
        Some(_) => "Valid".to_owned(),
    }
}

/// Why rows were skipped: "3 blank codes, 2 blank lines"; `None` when none was.
fn skip_reasons(report: &FileReport) -> Option<String> {
    let reason = |n: i64, one: &str, many: &str| (n > 0).then(|| counted(n, one, many));
    let reasons: Vec<String> = [
        reason(report.rows_skipped_blank_code, "blank code", "blank codes"),
        reason(report.rows_skipped_blank_line, "blank line", "blank lines"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

/// The batch's totals over the valid files.
#[component]
pub fn BatchTotals(files: RwSignal<Vec<FileEntry>>, staged: RwSignal<Vec<StagedFile>>) -> impl IntoView {
    let totals = move || {
        staged.with(|already| {
            files.with(|all| {
                let sent: Vec<&FileReport> =
                    all.iter().filter(|f| f.to_send(already)).filter_map(|f| f.report.as_ref()).collect();
                let excluded = all.iter().filter(|f| f.is_checked() && (!f.is_valid() || f.nothing_to_stage())).count();
                let skipped_files =
                    all.iter().filter(|f| f.is_valid() && !f.nothing_to_stage() && !f.to_send(already)).count();
                (
                    sent.len(),
                    excluded,
                    skipped_files,
                    sent.iter().map(|r| r.rows_staged).sum::<i64>(),
                    sent.iter().map(|r| r.rows_skipped()).sum::<i64>(),
                    sent.iter().map(|r| r.rows_rejected).sum::<i64>(),
                )
            })
        })
    };
    view! {
        <p class="totals" data-testid="batch-totals">
            {move || {
                let (files, excluded, already, rows, skipped, rejected) = totals();
                let already = if already > 0 { format!(", {already} staged already") } else { String::new() };
                format!(
                    "{files} file(s) to upload, {excluded} excluded{already}: {} rows to stage, {} skipped, {} rejected.",
                    format_count(rows), format_count(skipped), format_count(rejected)
                )
            }}
        </p>
    }
}

/// `part` of `whole` in whole percent (100 for nothing at all).
pub fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        100
    } else {
        (part * 100 / whole).clamp(0, 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(report: FileReport) -> FileEntry {
        FileEntry { report: Some(report), ..FileEntry::chosen("codes.csv".into(), 100) }
    }

    #[test]
    fn a_valid_file_with_rejected_rows_says_how_many() {
        let report = FileReport { rows_staged: 10, rows_rejected: 7, data_lines: 17, ..FileReport::default() };
        assert_eq!(file_status(&entry(report)), "Valid · 7 rows rejected");
        let report = FileReport { rows_staged: 10, rows_rejected: 1, data_lines: 11, ..FileReport::default() };
        assert_eq!(file_status(&entry(report)), "Valid · 1 row rejected");
        let report = FileReport { rows_staged: 10, data_lines: 10, ..FileReport::default() };
        assert_eq!(file_status(&entry(report)), "Valid");
    }

    #[test]
    fn skipped_rows_say_why() {
        let report = FileReport { rows_skipped_blank_code: 3, rows_skipped_blank_line: 2, ..FileReport::default() };
        assert_eq!(skip_reasons(&report).as_deref(), Some("3 blank codes, 2 blank lines"));
        let report = FileReport { rows_skipped_blank_code: 1, ..FileReport::default() };
        assert_eq!(skip_reasons(&report).as_deref(), Some("1 blank code"));
        let report = FileReport { rows_skipped_blank_line: 1, ..FileReport::default() };
        assert_eq!(skip_reasons(&report).as_deref(), Some("1 blank line"));
        assert_eq!(skip_reasons(&FileReport::default()), None);
    }
}
