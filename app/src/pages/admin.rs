//! `/admin`: ops create merchants and users and bind admins to merchants.

use leptos::{prelude::*, server_fn::ServerFn};
use uuid::Uuid;

use crate::{
    admin::{list_merchants, list_users, BindMerchant, CreateMerchant, CreateUser, SetUserDisabled, UserSummary},
    auth::{signed_in_user, Merchant, Role},
    components::{activity::PageTitle, error::ErrorNotice, scroll_box::ScrollBox},
    error::AppError,
};

/// What the last change did, in words, or why it failed.
type Outcome = Result<String, String>;

/// Merchants and users, with the forms that change them. The lists reload after each change;
/// the page says what the change did (or why it failed) until the next one starts.
#[component]
pub fn AdminPage() -> impl IntoView {
    let create_merchant = ServerAction::<CreateMerchant>::new();
    let create_user = ServerAction::<CreateUser>::new();
    let bind = ServerAction::<BindMerchant>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let changes = move || {
        (
            create_merchant.version().get(),
            create_user.version().get(),
            bind.version().get(),
            set_disabled.version().get(),
        )
    };
    let data = Resource::new(changes, |_| async {
        let me = signed_in_user().await?.map(|user| user.id);
        Ok::<_, AppError>((list_merchants().await?, list_users().await?, me))
    });
    let outcome = RwSignal::new(None::<Outcome>);
    // Names as the lists showed them when the change was asked for.
    let email = move |user: Uuid| {
        data.get_untracked()
            .and_then(Result::ok)
            .and_then(|(_, users, _)| users.into_iter().find(|u| u.id == user).map(|u| u.email))
            .unwrap_or_else(|| "The user".to_owned())
    };
    let merchant_name = move |merchant: Uuid| {
        data.get_untracked()
            .and_then(Result::ok)
            .and_then(|(merchants, _, _)| merchants.into_iter().find(|m| m.id == merchant).map(|m| m.name))
            .unwrap_or_else(|| "the merchant".to_owned())
    };
    report(create_merchant, outcome, |_, merchant| format!("Created merchant {}.", merchant.name));
    report(create_user, outcome, |asked, _| format!("Created {} ({}).", asked.email, asked.role.label()));
    report(bind, outcome, move |asked, _| {
        format!("{} can now act for {}.", email(asked.user), merchant_name(asked.merchant))
    });
    report(set_disabled, outcome, move |asked, _| {
        if asked.disabled {
            format!("{} is disabled: their sessions have ended.", email(asked.user))
        } else {
            format!("{} is enabled again.", email(asked.user))
        }
    });

    view! {
        <PageTitle page="Admin"/>
        <h1>"Admin"</h1>
        {move || outcome.get().map(|outcome| match outcome {
            Ok(done) => view! { <p class="success" role="status" data-testid="admin-outcome">{done}</p> }.into_any(),
            Err(problem) => view! { <p class="error" role="alert" data-testid="admin-outcome">{problem}</p> }.into_any(),
        })}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((merchants, users, me)) => view! {
                        <section class="card">
                            <h2>"Merchants"</h2>
                            <MerchantList merchants=merchants.clone()/>
                            <ActionForm action=create_merchant attr:class="inline-form">
                                <label>"Name" <input name="name" required maxlength="200"/></label>
                                <button type="submit">"Create merchant"</button>
                            </ActionForm>
                        </section>
                        <section class="card">
                            <h2>"Users"</h2>
                            <UserList users merchants=merchants.clone() me bind set_disabled/>
                            <h3>"New user"</h3>
                            <ActionForm action=create_user attr:class="inline-form">
                                <label>"Email" <input type="email" name="email" required/></label>
                                <label>"Password" <input type="password" name="password" required minlength="12" autocomplete="new-password"/></label>
                                <label for="new-user-role">"Role"</label>
                                <select id="new-user-role" name="role">
                                    <option value="merchant_admin">"Merchant admin"</option>
                                    <option value="ops">"Ops"</option>
                                </select>
                                <label for="new-user-merchant">"Merchant"</label>
                                <MerchantSelect merchants id="new-user-merchant"/>
                                <button type="submit">"Create user"</button>
                            </ActionForm>
                        </section>
                    }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Puts what `action` did, in `words` (of what was asked and what came back), or why it failed,
/// into `outcome` when it ends; clears `outcome` when it starts.
fn report<S>(
    action: ServerAction<S>,
    outcome: RwSignal<Option<Outcome>>,
    words: impl Fn(&S, &S::Output) -> String + Send + Sync + 'static,
) where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    // The action forgets its input when it ends: keep it for the words.
    let asked = StoredValue::new(None::<S>);
    Effect::new(move |_| {
        if let Some(input) = action.input().get() {
            asked.set_value(Some(input));
            outcome.set(None);
        }
    });
    Effect::new(move |_| {
        let said = match action.value().get() {
            None => return,
            Some(Ok(output)) => asked.with_value(|input| input.as_ref().map(|input| Ok(words(input, &output)))),
            Some(Err(error)) => Some(Err(error.to_string())),
        };
        outcome.set(said);
    });
}

#[component]
fn MerchantList(merchants: Vec<Merchant>) -> impl IntoView {
    if merchants.is_empty() {
        return view! { <p class="empty" data-testid="merchants-empty">"No merchants yet — create the first one below."</p> }.into_any();
    }
    view! {
        <ScrollBox label="Merchants">
        <table data-testid="merchants-table">
            <thead><tr><th scope="col">"Name"</th><th scope="col">"Id"</th></tr></thead>
            <tbody>
                {merchants.into_iter().map(|m| view! {
                    <tr><td>{m.name}</td><td class="mono">{m.id.to_string()}</td></tr>
                }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
    }
    .into_any()
}

#[component]
fn MerchantSelect(
    merchants: Vec<Merchant>,
    #[prop(optional, into)] id: Option<String>,
    #[prop(optional, into)] label: Option<String>,
) -> impl IntoView {
    view! {
        <select name="merchant" id=id aria-label=label>
            {merchants.into_iter().map(|m| view! { <option value=m.id.to_string()>{m.name}</option> }).collect_view()}
        </select>
    }
}

#[component]
fn UserList(
    users: Vec<UserSummary>,
    merchants: Vec<Merchant>,
    /// The signed-in user, who may not disable their own account.
    me: Option<Uuid>,
    bind: ServerAction<BindMerchant>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    view! {
        <ScrollBox label="Users">
        <table data-testid="users-table">
            <thead>
                <tr>
                    <th scope="col">"Email"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Merchants"</th>
                    <th scope="col">"Status"</th>
                </tr>
            </thead>
            <tbody>
                {users.into_iter().map(|user| {
                    let merchants = merchants.clone();
                    let id = user.id.to_string();
                    let bind_id = id.clone();
                    let email = user.email.clone();
                    let names = match user.role {
                        Role::Ops => "All merchants".to_owned(),
                        Role::MerchantAdmin => user.merchants.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                    };
                    view! {
                        <tr data-testid="user-row" data-email=user.email.clone()>
                            <td>{user.email.clone()}</td>
                            <td>{user.role.label()}</td>
                            <td>
                                {names}
                                {(user.role == Role::MerchantAdmin).then(move || view! {
                                    <ActionForm action=bind attr:class="inline-form">
                                        <input type="hidden" name="user" value=bind_id/>
                                        <MerchantSelect merchants label=format!("Merchant to add to {email}")/>
                                        <button type="submit">"Add merchant"</button>
                                    </ActionForm>
                                })}
                            </td>
                            <td data-testid="user-status">
                                {if user.disabled { "Disabled" } else { "Active" }}
                                {if me == Some(user.id) {
                                    view! { <span class="muted">" (you)"</span> }.into_any()
                                } else {
                                    view! {
                                        <ActionForm action=set_disabled attr:class="inline-form">
                                            <input type="hidden" name="user" value=id/>
                                            <input type="hidden" name="disabled" value=(!user.disabled).to_string()/>
                                            <button type="submit">{if user.disabled { "Enable" } else { "Disable" }}</button>
                                        </ActionForm>
                                    }.into_any()
                                }}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
    }
}
