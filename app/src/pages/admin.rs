//! `/admin`: ops create merchants and users and bind admins to merchants.

use leptos::prelude::*;

use crate::{
    admin::{list_merchants, list_users, BindMerchant, CreateMerchant, CreateUser, SetUserDisabled, UserSummary},
    auth::{Merchant, Role},
    components::error::ErrorNotice,
};

/// Merchants and users, with the forms that change them. The lists reload after each change.
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
        Ok::<_, crate::error::AppError>((list_merchants().await?, list_users().await?))
    });
    let failure = move || {
        let done = |result: Option<Result<_, _>>| result.and_then(Result::err);
        done(create_merchant.value().get().map(|r| r.map(|_| ())))
            .or_else(|| done(create_user.value().get().map(|r| r.map(|_| ()))))
            .or_else(|| done(bind.value().get()))
            .or_else(|| done(set_disabled.value().get()))
            .map(|e: crate::error::AppError| e.to_string())
    };

    view! {
        <h1>"Admin"</h1>
        {move || failure().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((merchants, users)) => view! {
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
                            <UserList users merchants=merchants.clone() bind set_disabled/>
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

#[component]
fn MerchantList(merchants: Vec<Merchant>) -> impl IntoView {
    if merchants.is_empty() {
        return view! { <p class="empty">"No merchants yet"</p> }.into_any();
    }
    view! {
        <table data-testid="merchants-table">
            <thead><tr><th scope="col">"Name"</th><th scope="col">"Id"</th></tr></thead>
            <tbody>
                {merchants.into_iter().map(|m| view! {
                    <tr><td>{m.name}</td><td class="mono">{m.id.to_string()}</td></tr>
                }).collect_view()}
            </tbody>
        </table>
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
    bind: ServerAction<BindMerchant>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    view! {
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
                            <td>
                                {if user.disabled { "Disabled" } else { "Active" }}
                                <ActionForm action=set_disabled attr:class="inline-form">
                                    <input type="hidden" name="user" value=id/>
                                    <input type="hidden" name="disabled" value=(!user.disabled).to_string()/>
                                    <button type="submit">{if user.disabled { "Enable" } else { "Disable" }}</button>
                                </ActionForm>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
