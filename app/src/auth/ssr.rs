//! The server side of accounts: the one place that resolves the caller of every server
//! function and HTTP route, password hashing, sessions and sign-in throttling.

use std::{future::Future, net::SocketAddr, sync::LazyLock};

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Argon2,
};
use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{request::Parts, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use sqlx::{PgConnection, PgPool};
use tower_sessions::Session;
use uuid::Uuid;

use super::{CurrentUser, Merchant, Role, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::{error::AppError, state::AppState};

/// The session key under which the signed-in user's id is kept.
const USER_ID_KEY: &str = "user_id";

/// Why a sign-in, a password, a user or a merchant was refused or failed, with what is known of
/// it; an [`AppError`] at the boundary (the server function, the command line), where a fault
/// of the server is logged once.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Enter an email address like name@example.com.")]
    BadEmail,
    #[error("The password must have at least {MIN_PASSWORD_LEN} characters.")]
    ShortPassword,
    #[error("The password must have at most {MAX_PASSWORD_LEN} bytes.")]
    LongPassword,
    /// Unknown email or wrong password, never saying which.
    #[error("The email or password is incorrect.")]
    BadCredentials,
    /// Minutes left on the lock of the email or the address.
    #[error("Too many failed sign-ins. Try again in {}.", if *.0 == 1 { "1 minute".to_owned() } else { format!("{} minutes", .0) })]
    Throttled(i64),
    /// Said only to the right password, after the attempt was counted.
    #[error("This account is disabled. Ask ops to enable it.")]
    Disabled,
    /// Every hashing slot stayed busy for as long as a sign-in waits.
    #[error("The server is busy signing people in; try again in a moment.")]
    HashingBusy,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("A merchant admin needs at least one merchant.")]
    NoMerchant,
    #[error("A user with the email {0} exists already.")]
    EmailTaken(String),
    #[error("There is no such user.")]
    NoSuchUser,
    #[error("There is no such merchant.")]
    NoSuchMerchant,
    #[error("Ops act for every merchant already.")]
    OpsBound,
    #[error("Give the merchant a name of 1 to 200 characters.")]
    BadMerchantName,
    #[error("A merchant named {0} exists already.")]
    MerchantTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<AccountError> for AppError {
    fn from(error: AccountError) -> Self {
        use AccountError::*;
        match error {
            BadEmail | ShortPassword | LongPassword | NoMerchant | OpsBound | BadMerchantName => {
                AppError::Invalid(error.to_string())
            }
            BadCredentials => AppError::BadCredentials,
            Throttled(_) => AppError::Throttled(error.to_string()),
            Disabled => AppError::Forbidden(error.to_string()),
            HashingBusy => AppError::Overloaded(error.to_string()),
            EmailTaken(_) | MerchantTaken(_) => AppError::Conflict(error.to_string()),
            NoSuchUser | NoSuchMerchant => AppError::NotFound(error.to_string()),
            Hashing(_) => {
                tracing::error!(%error, "an account operation failed");
                AppError::Internal
            }
            Database(error) => AppError::from(error),
        }
    }
}

/// Runs a server function's body and sets the HTTP status its error calls for (401, 403, …).
/// Every server function returns through this.
pub async fn respond<T>(body: impl Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    let result = body.await;
    if let Err(error) = &result {
        error.set_response_status();
    }
    result
}

/// The caller of a server function or route: a signed-in, enabled user.
#[derive(Debug, Clone)]
pub struct Caller(pub CurrentUser);

impl Caller {
    /// Ok if the caller may act for `merchant`; otherwise `NotFound`, the answer an unknown
    /// merchant gets too, so an id tells nothing of what exists.
    pub fn may_act_for(&self, merchant: Uuid) -> Result<(), AppError> {
        self.may_see(merchant, "merchant")
    }

    /// Ok if the caller may act for `merchant`, the owner of a `what` (job, upload, …) asked for
    /// by id; otherwise "There is no such `what`", as for an id that does not exist.
    pub fn may_see(&self, merchant: Uuid, what: &str) -> Result<(), AppError> {
        if self.0.may_act_for(merchant) {
            Ok(())
        } else {
            Err(AppError::not_found(what))
        }
    }

    /// Ok for ops; `Forbidden` for everyone else.
    pub fn require_ops(&self) -> Result<(), AppError> {
        match self.0.role {
            Role::Ops => Ok(()),
            Role::MerchantAdmin => Err(AppError::forbidden("Only ops may do this.")),
        }
    }

    /// The merchants whose data the caller may see: `None` means every merchant (ops).
    pub fn visible_merchants(&self) -> Option<Vec<Uuid>> {
        match self.0.role {
            Role::Ops => None,
            Role::MerchantAdmin => Some(self.0.merchants.iter().map(|m| m.id).collect()),
        }
    }

    pub fn user_id(&self) -> Uuid {
        self.0.id
    }
}

/// The state and the signed-in caller of the current server function; `Unauthorized` without
/// a valid session. Server functions that touch data start here.
pub async fn context() -> Result<(AppState, Caller), AppError> {
    let state = crate::state::app_state()?;
    let session = request_session().await?;
    let user = resolve_user(&state.pool, &session).await?.ok_or(AppError::Unauthorized)?;
    Ok((state, Caller(user)))
}

/// Like [`context`], and also requires the caller to be ops.
pub async fn ops_context() -> Result<(AppState, Caller), AppError> {
    let (state, caller) = context().await?;
    caller.require_ops()?;
    Ok((state, caller))
}

/// The session of the current server-function request.
pub async fn request_session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|error| {
        tracing::error!(%error, "no session layer on the router");
        AppError::Internal
    })
}

/// The client's IP address, for throttling; `None` if the server was not started with
/// connection info.
pub async fn client_address() -> Option<String> {
    leptos_axum::extract::<ConnectInfo<SocketAddr>>().await.ok().map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The user the session belongs to, if the session is valid and the user still exists and is
/// enabled. A session of a disabled or deleted user is ended here.
pub async fn resolve_user(pool: &PgPool, session: &Session) -> Result<Option<CurrentUser>, AppError> {
    let user_id = match session.get::<Uuid>(USER_ID_KEY).await {
        Ok(Some(id)) => id,
        Ok(None) => return Ok(None),
        // Sessions live in PostgreSQL: a store that fails is a database that does not answer.
        Err(error) => {
            tracing::warn!(%error, "session store failed");
            return Err(AppError::Unavailable("The database is not answering just now; try again shortly.".into()));
        }
    };
    let mut conn = pool.acquire().await?;
    match load_user(&mut conn, user_id).await? {
        Some((user, false)) => Ok(Some(user)),
        _ => {
            end_session(session).await?;
            Ok(None)
        }
    }
}

/// A user and whether they are disabled.
async fn load_user(conn: &mut PgConnection, id: Uuid) -> Result<Option<(CurrentUser, bool)>, sqlx::Error> {
    let Some((email, role, disabled)) =
        sqlx::query_as::<_, (String, String, bool)>("SELECT email, role, disabled FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    let merchants = sqlx::query_as::<_, Merchant>(
        "SELECT m.id, m.name FROM user_merchants um JOIN merchants m ON m.id = um.merchant_id
         WHERE um.user_id = $1 ORDER BY m.name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some((CurrentUser { id, email, role, merchants }, disabled)))
}

/// Binds the session to `user` under a fresh session id (no session fixation).
pub async fn start_session(session: &Session, user: CurrentUser) -> Result<(), AppError> {
    let stored = async {
        session.cycle_id().await?;
        session.insert(USER_ID_KEY, user.id).await
    };
    stored.await.map_err(|error| {
        tracing::error!(%error, "could not store the session");
        AppError::Internal
    })?;
    tracing::info!(user = %user.id, role = user.role.as_str(), "signed in");
    Ok(())
}

/// Deletes the session from the store and expires its cookie.
pub async fn end_session(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(|error| {
        tracing::error!(%error, "could not delete the session");
        AppError::Internal
    })
}

// --- Passwords -------------------------------------------------------------------------------

/// How many password hashes (or verifications) run at once in this process. Each Argon2id
/// hash holds a 19 MiB buffer: without a bound, 40 sign-ins arriving together took a server
/// from 26 to 808 MiB. With it, hashing holds at most 4 × 19 MiB.
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// How long a sign-in waits for a hashing slot before the answer is 503 (try again).
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
static HASH_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_HASHES);

/// Runs `work` (an Argon2 hash or verification) on the blocking pool once a hashing slot is
/// free; `Overloaded` when none frees up within [`HASH_WAIT`] — never a queue without end.
async fn with_hash_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AccountError> {
    let slot = tokio::time::timeout(HASH_WAIT, HASH_SLOTS.acquire()).await;
    let Ok(Ok(_slot)) = slot else {
        tracing::warn!(limit = MAX_CONCURRENT_HASHES, "password hashing at its bound: answered 503");
        return Err(AccountError::HashingBusy);
    };
    let in_flight = metrics::gauge!("password_hashes_in_flight");
    in_flight.increment(1.0);
    let hashed = tokio::task::spawn_blocking(work).await.map_err(|error| AccountError::Hashing(error.to_string()));
    in_flight.decrement(1.0);
    hashed
}

/// Hashes a password with Argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1, OWASP's
/// minimum), off the async threads; `Overloaded` when hashing is at its bound.
#[tracing::instrument(skip_all)]
pub async fn hash_password(password: String) -> Result<String, AccountError> {
    with_hash_slot(move || Argon2::default().hash_password(password.as_bytes()).map(|hash| hash.to_string()))
        .await?
        .map_err(|error| AccountError::Hashing(error.to_string()))
}

/// Whether `password` matches the PHC string `hash` (or, for an unknown account, a hash of
/// nothing anyone knows, which takes as long); a malformed hash never matches.
#[tracing::instrument(skip_all)]
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, AccountError> {
    with_hash_slot(move || {
        let hash = hash.as_deref().unwrap_or(&DUMMY_HASH);
        PasswordHash::new(hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
}

/// A hash to verify against when the email is unknown, so that the answer takes as long as
/// for a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(Uuid::new_v4().to_string().as_bytes())
        .map(|hash| hash.to_string())
        .unwrap_or_default()
});

/// Checks a new password against the length rules.
pub fn check_new_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccountError::ShortPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountError::LongPassword);
    }
    Ok(())
}

/// Normalises an email for storage and look-up; `Invalid` unless it looks like one.
pub fn normalise_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(email)
    } else {
        Err(AccountError::BadEmail)
    }
}

// --- Sign-in and throttling ------------------------------------------------------------------

/// Failed sign-ins counted per account within this window…
const THROTTLE_WINDOW_MINUTES: i32 = 15;
/// …lock the account's sign-in for this long…
const LOCK_MINUTES: i32 = 15;
/// …after this many failures for one email…
const MAX_FAILURES_PER_EMAIL: i32 = 5;
/// …or this many from one address (any emails).
const MAX_FAILURES_PER_ADDRESS: i32 = 30;

/// The longest email looked up: RFC 5321's limit. Longer ones are refused before anything
/// touches the database.
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks the credentials. Every attempt is counted against its email and its client address
/// *before* the password is looked at, in one statement per key, so N attempts at once count
/// as N: past [`MAX_FAILURES_PER_EMAIL`] (or [`MAX_FAILURES_PER_ADDRESS`]) within the window
/// the key is locked and the attempt refused unhashed. A right password takes the attempt back.
/// A disabled account answers as a wrong password does, unless the password is right.
#[tracing::instrument(skip(pool, password))]
pub async fn sign_in(
    pool: &PgPool,
    email: &str,
    password: &str,
    client: Option<&str>,
) -> Result<CurrentUser, AccountError> {
    let email = email.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(AccountError::BadEmail);
    }
    if password.len() > super::MAX_PASSWORD_LEN {
        return Err(AccountError::BadCredentials);
    }
    let email_key = format!("email:{email}");
    let address_key = client.map(|addr| format!("addr:{addr}"));

    let mut locked = count_attempt(pool, &email_key, MAX_FAILURES_PER_EMAIL).await?;
    if let Some(key) = &address_key {
        locked = locked.max(count_attempt(pool, key, MAX_FAILURES_PER_ADDRESS).await?);
    }
    if let Some(minutes) = locked {
        tracing::warn!(client, "sign-in refused: throttled");
        metrics::counter!("sign_in_throttled_total").increment(1);
        return Err(AccountError::Throttled(minutes));
    }

    let found = sqlx::query_as::<_, (Uuid, String)>("SELECT id, password_hash FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(pool)
        .await?;
    let hash = found.as_ref().map(|(_, hash)| hash.clone());
    let matches = verify_password(password.to_owned(), hash).await?;
    let user = match (found, matches) {
        (Some((id, _)), true) => load_user(&mut *pool.acquire().await?, id).await?,
        _ => None,
    };
    let Some((user, disabled)) = user else {
        tracing::warn!(client, "sign-in refused: bad credentials");
        metrics::counter!("sign_in_failures_total").increment(1);
        return Err(AccountError::BadCredentials);
    };
    if disabled {
        // The attempt stays counted: the right password of a disabled account is not a way
        // to try passwords without limit.
        tracing::warn!(user = %user.id, "sign-in refused: account disabled");
        return Err(AccountError::Disabled);
    }
    sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(&email_key).execute(pool).await?;
    if let Some(key) = &address_key {
        sqlx::query("UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $1")
            .bind(key)
            .execute(pool)
            .await?;
    }
    Ok(user)
}

/// Counts one attempt for `key` (a new window when the last one is over; nothing while the key
/// is locked), locking the key when this attempt is past `limit`. Returns the minutes left on
/// the lock if the key is locked now. One statement: concurrent attempts queue on the row.
async fn count_attempt(pool: &PgPool, key: &str, limit: i32) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar::<_, Option<i64>>(
        "WITH counted AS (
             INSERT INTO login_throttle AS t (key, failures, window_start, locked_until)
             VALUES ($1, 1, now(), CASE WHEN 1 > $3 THEN now() + make_interval(mins => $4) END)
             ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN t.locked_until > now() THEN t.failures
                                 WHEN t.window_start < now() - make_interval(mins => $2) THEN 1
                                 ELSE t.failures + 1 END,
                 window_start = CASE WHEN t.locked_until > now() THEN t.window_start
                                     WHEN t.window_start < now() - make_interval(mins => $2) THEN now()
                                     ELSE t.window_start END,
                 locked_until = CASE WHEN t.locked_until > now() THEN t.locked_until
                                     WHEN t.window_start >= now() - make_interval(mins => $2) AND t.failures + 1 > $3
                                         THEN now() + make_interval(mins => $4)
                                     ELSE t.locked_until END
             RETURNING locked_until
         )
         SELECT CASE WHEN locked_until > now() THEN ceil(extract(epoch FROM locked_until - now()) / 60)::bigint END
         FROM counted",
    )
    .bind(key)
    .bind(THROTTLE_WINDOW_MINUTES)
    .bind(limit)
    .bind(LOCK_MINUTES)
    .fetch_one(pool)
    .await
}

// --- Users and merchants ---------------------------------------------------------------------

/// Creates a user with a hashed password, bound to `merchants` (merchant admins only).
/// Fails with `Conflict` if the email is taken and `Invalid` for a bad email, password, or a
/// merchant admin without a merchant.
#[tracing::instrument(skip(pool, password))]
pub async fn create_user(
    pool: &PgPool,
    email: &str,
    password: String,
    role: Role,
    merchants: &[Uuid],
) -> Result<Uuid, AccountError> {
    let email = normalise_email(email)?;
    check_new_password(&password)?;
    if role == Role::MerchantAdmin && merchants.is_empty() {
        return Err(AccountError::NoMerchant);
    }
    let hash = hash_password(password).await?;
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query("INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(&email)
        .bind(&hash)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await;
    if let Err(error) = inserted {
        if constraint_of(&error) == Some("users_email_unique") {
            return Err(AccountError::EmailTaken(email));
        }
        return Err(error.into());
    }
    if role == Role::MerchantAdmin {
        bind_merchants(&mut tx, id, merchants).await?;
    }
    tx.commit().await?;
    tracing::info!(user = %id, role = role.as_str(), "created a user");
    Ok(id)
}

/// Binds a merchant admin to merchants; `NoSuchMerchant` (or `NoSuchUser`) for an unknown id.
pub async fn bind_merchants(conn: &mut PgConnection, user: Uuid, merchants: &[Uuid]) -> Result<(), AccountError> {
    let bound = sqlx::query(
        "INSERT INTO user_merchants (user_id, merchant_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(merchants)
    .execute(conn)
    .await;
    match bound {
        Err(error) if constraint_of(&error) == Some("user_merchants_merchant_fk") => Err(AccountError::NoSuchMerchant),
        Err(error) if constraint_of(&error) == Some("user_merchants_user_fk") => Err(AccountError::NoSuchUser),
        other => other.map(|_| ()).map_err(AccountError::from),
    }
}

/// The name of the constraint a database error broke, if any.
pub fn constraint_of(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|e| e.constraint())
}

// --- Plain HTTP routes -----------------------------------------------------------------------

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    /// Resolves the caller of a plain route (downloads, upload chunks): 401 without a session.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(status, message)| (status, message).into_response())?;
        match resolve_user(&state.pool, &session).await {
            Ok(Some(user)) => Ok(Caller(user)),
            Ok(None) => Err(AppError::Unauthorized.into_response()),
            Err(error) => Err(error.into_response()),
        }
    }
}

/// Pages only ops may open; anyone else gets the page's own refusal with status 403.
const OPS_ONLY_PAGES: [&str; 1] = ["/admin"];

/// Pages other than the sign-in page need a session: without one the browser is sent to
/// `/login?next=<the page>`; ops-only pages answer 403 to everyone else. Server functions
/// (`/api/…`) answer 401 and 403 themselves, the bundle (`/pkg/…`) and `/healthz` are public.
pub async fn require_sign_in_for_pages(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let public = path == "/login"
        || path == "/healthz"
        || path == "/readyz"
        || path == "/favicon.ico"
        || path.starts_with("/pkg/")
        || path.starts_with("/api/");
    if public {
        return next.run(request).await;
    }
    let ops_only = OPS_ONLY_PAGES.iter().any(|page| path == *page || path.starts_with(&format!("{page}/")));
    match resolve_user(&state.pool, &session).await {
        Ok(Some(user)) if ops_only && user.role != Role::Ops => {
            let mut response = next.run(request).await;
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => {
            let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            Redirect::to(&super::login_path(target)).into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(normalise_email("  Ops@Example.COM ").unwrap(), "ops@example.com");
        assert!(normalise_email("no-at-sign").is_err());
        assert!(normalise_email("a b@example.com").is_err());
        assert!(normalise_email("@example.com").is_err());
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_new_password("correct horse battery").is_ok());
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_hash_and_no_other() {
        let hash = hash_password("correct horse battery".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery".to_owned(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password("correct horse batterY".to_owned(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".to_owned(), Some("not a hash".to_owned())).await.unwrap());
    }
}
