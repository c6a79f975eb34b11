//! The merchant `<select>` that the upload, review and jobs pages share.

use leptos::{ev, prelude::*};
use uuid::Uuid;

use crate::{auth::Merchant, components::error::ErrorNotice, error::AppError};

/// "Merchant" and a `<select>` of `merchants` (loaded by the page, which also reads them),
/// `chosen` selected; `on_choose` hears of each change (`None` for the first option, labelled
/// `none`: "Choose a merchant", or "All" for a filter). A failed load shows its error.
#[component]
pub fn MerchantPicker(
    merchants: Resource<Result<Vec<Merchant>, AppError>>,
    #[prop(into)] chosen: Signal<Option<Uuid>>,
    #[prop(into)] on_choose: Callback<Option<Uuid>>,
    #[prop(optional, into)] disabled: Signal<bool>,
    #[prop(default = "Choose a merchant")] none: &'static str,
    #[prop(default = "merchant")] testid: &'static str,
    /// The label's class: `field` on a line of its own, empty among a form's filters.
    #[prop(default = "field")]
    class: &'static str,
) -> impl IntoView {
    let choose = move |event: ev::Event| on_choose.run(event_target_value(&event).parse().ok());
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading merchants…"</p> }>
            {move || Suspend::new(async move {
                match merchants.await {
                    Ok(list) => view! {
                        <label class=class>
                            "Merchant"
                            <select on:change=choose prop:disabled=move || disabled.get() data-testid=testid>
                                <option value="" selected=move || chosen.get().is_none()>{none}</option>
                                {list.into_iter().map(|m| {
                                    let id = m.id;
                                    view! { <option value=id.to_string() selected=move || chosen.get() == Some(id)>{m.name}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                    }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
    }
}
