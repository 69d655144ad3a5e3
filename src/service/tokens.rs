//! Personal access tokens (spec sections 1, 2, 5): creation, expiry,
//! revocation, rotation with family revocation, and authentication with the
//! throttled record of use.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::auth::restriction::Restriction;
use crate::auth::token::{self, PlainToken, Scope, SecretKey};
use crate::db::page::Listing;
use crate::db::token::{ActiveOn, NewToken, TokenQuery, TokenRow};
use crate::db::{self, user::User, DbConn};
use crate::error::{Error, Result};
use crate::service::audit::{self, Actor, Event};
use crate::settings::Settings;

pub use crate::service::notify::Via;

/// How many distinct client IPs a token remembers.
pub const MAX_LAST_USED_IPS: usize = 5;
/// A new IP is recorded at most this often per token.
pub const IP_RECORD_INTERVAL: Duration = Duration::minutes(1);
/// A rotation without an expiry date gives the new token this long.
pub const ROTATION_DEFAULT_DAYS: i64 = 7;

pub struct NewTokenRequest<'a> {
    pub user: &'a User,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub scopes: &'a [String],
    pub expires_at: Option<NaiveDate>,
    /// A predetermined token string (admin automation), else one is generated.
    pub token: Option<&'a str>,
    pub impersonation: bool,
    /// Who makes it, how and from where: the author of its audit event,
    /// and named in the owner's notice when that is not the owner.
    pub actor: &'a Actor,
}

/// What a new token is limited to (restricted tokens, a gitpat
/// extension): the lists as the caller gave them, checked by
/// [`Restriction::parse`] before anything is written; `None` for a list is
/// no restriction there.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits<'a> {
    pub repositories: Option<&'a [String]>,
    pub push_ref_patterns: Option<&'a [String]>,
}

/// The restriction token `row` carries (none for a GitLab token).
pub fn restriction(row: &TokenRow) -> Restriction {
    Restriction::from_db(row.repositories.as_deref(), row.push_ref_patterns.as_deref())
}

/// The token as the API and `token list --json` show it: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub revoked: bool,
    pub created_at: String,
    pub description: Option<String>,
    pub scopes: Vec<&'static str>,
    pub user_id: i64,
    pub last_used_at: Option<String>,
    pub active: bool,
    pub expires_at: Option<String>,
    pub impersonation: bool,
    pub last_used_ips: Vec<String>,
    /// gitpat's restricted tokens: the repository patterns, or null.
    pub repositories: Option<Vec<String>>,
    /// The ref patterns it may push to, or null.
    pub push_ref_patterns: Option<Vec<String>>,
}

/// ISO 8601 UTC with milliseconds, as GitLab writes timestamps.
pub fn iso(t: chrono::NaiveDateTime) -> String {
    t.and_utc().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl TokenView {
    pub fn new(row: &TokenRow, settings: &Settings, today: NaiveDate) -> TokenView {
        TokenView {
            id: row.id,
            name: row.name.clone(),
            revoked: row.revoked,
            created_at: iso(row.created_at),
            description: row.description.clone(),
            scopes: token::scopes_from_db(&row.scopes)
                .into_iter()
                .map(Scope::as_str)
                .collect(),
            user_id: row.user_id,
            last_used_at: row.last_used_at.map(iso),
            active: is_active(row, today, settings.enforce_personal_access_token_expiration),
            expires_at: row.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
            impersonation: row.impersonation,
            last_used_ips: parse_ips(&row.last_used_ips),
            repositories: restriction(row).repository_list(),
            push_ref_patterns: restriction(row).push_ref_list(),
        }
    }
}

/// Has the token expired on `today` (UTC)? A token is valid while
/// `today < expires_at`: it expires at 00:00 UTC of its expiry date.
pub fn is_expired(row: &TokenRow, today: NaiveDate) -> bool {
    row.expires_at.is_some_and(|d| today >= d)
}

/// Active = not revoked and not expired (expiry counts only while enforced).
pub fn is_active(row: &TokenRow, today: NaiveDate, enforce_expiry: bool) -> bool {
    let expired = enforce_expiry && is_expired(row, today);
    !row.revoked && !expired
}

/// Checks an expiry date against the instance's maximum lifetime, filling in
/// the maximum when none is given.
pub fn resolve_expiry(
    expires_at: Option<NaiveDate>,
    settings: &Settings,
    today: NaiveDate,
) -> Result<Option<NaiveDate>> {
    if let Some(d) = expires_at {
        if d < today {
            return Err(Error::Invalid(format!("expires_at {d} is in the past")));
        }
    }
    let Some(max_days) = settings.max_personal_access_token_lifetime else {
        return Ok(expires_at);
    };
    let latest = today + Duration::days(i64::from(max_days));
    match expires_at {
        None => Ok(Some(latest)),
        Some(d) if d > latest => Err(Error::Invalid(format!(
            "expires_at {d} is too far away: this instance allows tokens to live at most {max_days} days, until {latest}"
        ))),
        Some(d) => Ok(Some(d)),
    }
}

fn validate_text(field: &str, v: &str, required: bool) -> Result<()> {
    if required && v.trim().is_empty() {
        return Err(Error::Invalid(format!("{field} is required")));
    }
    if v.chars().count() > 255 {
        return Err(Error::Invalid(format!("{field} is too long (at most 255 characters)")));
    }
    Ok(())
}

/// Creates a token and returns it with the secret, to be shown once.
pub fn create(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    req: &NewTokenRequest,
    now: DateTime<Utc>,
) -> Result<(TokenRow, PlainToken)> {
    create_limited(conn, key, settings, req, Limits::default(), now)
}

/// [`create`], limited to `limits` (a restricted token).
pub fn create_limited(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    req: &NewTokenRequest,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<(TokenRow, PlainToken)> {
    validate_text("name", req.name, true)?;
    let limited = Restriction::parse(limits.repositories, limits.push_ref_patterns).map_err(Error::Invalid)?;
    if let Some(d) = req.description {
        validate_text("description", d, false)?;
    }
    let scopes = token::parse_scopes(req.scopes, req.user.is_admin).map_err(Error::Invalid)?;
    let expires_at = resolve_expiry(req.expires_at, settings, now.date_naive())?;
    let plain = match req.token {
        Some(s) => {
            token::validate_predetermined(s).map_err(Error::Invalid)?;
            PlainToken::new(s)
        }
        None => PlainToken::generate(&settings.personal_access_token_prefix)?,
    };
    let digest = key.digest(&plain);
    let (repositories, push_ref_patterns) = (limited.repositories_db(), limited.push_refs_db());
    let new = NewToken {
        user_id: req.user.id,
        name: req.name,
        description: req.description,
        scopes: &token::scopes_to_db(&scopes),
        token_digest: digest.as_str(),
        created_at: now.naive_utc(),
        expires_at,
        impersonation: req.impersonation,
        previous_token_id: None,
        repositories: repositories.as_deref(),
        push_ref_patterns: push_ref_patterns.as_deref(),
    };
    let row = crate::db::write_transaction(conn, |conn| {
        if db::token::find_by_digest(conn, digest.as_str())?.is_some() {
            return Err(Error::Conflict("that token string is already in use".into()));
        }
        let row = db::token::insert(conn, &new)?;
        // The owner hears of every new token, however it was made.
        let by = (!req.actor.is(req.user.id) && req.actor.user_id.is_some()).then_some(req.actor.name.as_str());
        let via = req.actor.via.unwrap_or(Via::Cli);
        crate::service::notify::queue_created(conn, &row, via, by, now)?;
        let event = Event::on_user(
            event_name(&row, "created"),
            req.user,
            format!("Created {} with id {}", kind_of(&row), row.id),
        );
        audit::record(conn, req.actor, with_restriction(token_event(event, &row), &row), now)?;
        Ok(row)
    })?;
    Ok((row, plain))
}

/// A token's kind in words.
fn kind_of(t: &TokenRow) -> &'static str {
    if t.impersonation {
        "impersonation token"
    } else {
        "personal access token"
    }
}

/// The audit event of `action` (created, revoked, rotated) on `t`.
fn event_name(t: &TokenRow, action: &str) -> &'static str {
    match (t.impersonation, action) {
        (true, "created") => "impersonation_token_created",
        (true, "revoked") => "impersonation_token_revoked",
        (true, _) => "impersonation_token_rotated",
        (false, "created") => "personal_access_token_created",
        (false, "revoked") => "personal_access_token_revoked",
        (false, _) => "personal_access_token_rotated",
    }
}

/// `event` aimed at token `t`, with its scopes and expiry.
fn token_event(event: Event, t: &TokenRow) -> Event {
    let scopes: Vec<&str> = token::scopes_from_db(&t.scopes)
        .into_iter()
        .map(Scope::as_str)
        .collect();
    event
        .target(audit::TOKEN, Some(t.id), t.name.clone())
        .with("token_id", t.id)
        .with("token_name", t.name.clone())
        .with("scopes", scopes)
        .with("expires_at", t.expires_at.map(|d| d.format("%Y-%m-%d").to_string()))
        .with("impersonation", t.impersonation)
}

/// `event` with the restriction of `t`, when it has one.
fn with_restriction(event: Event, t: &TokenRow) -> Event {
    let r = restriction(t);
    if !r.is_restricted() {
        return event;
    }
    event
        .with("repositories", r.repository_list())
        .with("push_ref_patterns", r.push_ref_list())
}

/// The owner of token `t`, for its events.
fn owner_of(conn: &mut DbConn, t: &TokenRow) -> Result<User> {
    db::user::find(conn, t.user_id)?.ok_or_else(|| Error::NotFound(format!("no user with id {}", t.user_id)))
}

pub fn get(conn: &mut DbConn, id: i64) -> Result<TokenRow> {
    db::token::find(conn, id)?.ok_or_else(|| Error::NotFound(format!("no token with id {id}")))
}

/// May the owner manage `t` (see it on their page, rotate, revoke)? Their
/// own personal tokens only: an impersonation token is the
/// administrators' (GitLab's token policy).
pub fn owner_may_manage(user_id: i64, t: &TokenRow) -> bool {
    t.user_id == user_id && !t.impersonation
}

/// The personal (not impersonation) tokens of `user_id`.
pub fn personal_of(conn: &mut DbConn, user_id: i64) -> Result<Vec<TokenRow>> {
    Ok(manageable_by_owner(user_id).all(conn)?)
}

/// The tokens [`owner_may_manage`] lets `user_id` manage, in id order.
pub fn manageable_by_owner(user_id: i64) -> TokenQuery {
    TokenQuery {
        user_id: Some(user_id),
        impersonation: Some(false),
        ..TokenQuery::default()
    }
}

/// Token `id` if its owner `user_id` may manage it ([`owner_may_manage`]);
/// any other is "not found" (its existence is not told).
pub fn get_owned(conn: &mut DbConn, user_id: i64, id: i64) -> Result<TokenRow> {
    match db::token::find(conn, id)? {
        Some(t) if owner_may_manage(user_id, &t) => Ok(t),
        _ => Err(Error::NotFound(format!("no token with id {id}"))),
    }
}

/// Impersonation token `id` of `user_id` (for an administrator), or "not
/// found".
pub fn get_impersonation(conn: &mut DbConn, user_id: i64, id: i64) -> Result<TokenRow> {
    match db::token::find(conn, id)? {
        Some(t) if t.user_id == user_id && t.impersonation => Ok(t),
        _ => Err(Error::NotFound(format!("no impersonation token with id {id}"))),
    }
}

/// The impersonation tokens of `user_id`.
pub fn impersonation_of(conn: &mut DbConn, user_id: i64) -> Result<Vec<TokenRow>> {
    Ok(impersonation_tokens(user_id).all(conn)?)
}

/// The impersonation tokens of `user_id`, in id order.
pub fn impersonation_tokens(user_id: i64) -> TokenQuery {
    TokenQuery {
        user_id: Some(user_id),
        impersonation: Some(true),
        ..TokenQuery::default()
    }
}

/// The `state` filter of a token list: active or not as [`is_active`]
/// judges on `today`.
pub fn state_filter(active: bool, settings: &Settings, today: NaiveDate) -> ActiveOn {
    ActiveOn {
        active,
        today,
        enforce_expiry: settings.enforce_personal_access_token_expiration,
    }
}

/// Finds a token by its secret (for `token revoke --token`).
pub fn find_by_secret(conn: &mut DbConn, key: &SecretKey, secret: &PlainToken) -> Result<TokenRow> {
    db::token::find_by_digest(conn, key.digest(secret).as_str())?.ok_or_else(|| Error::NotFound("no such token".into()))
}

/// Revokes token `id` (a conflict when it is revoked already), with its
/// audit event by `actor`, in one transaction.
pub fn revoke(conn: &mut DbConn, actor: &Actor, id: i64, now: DateTime<Utc>) -> Result<TokenRow> {
    crate::db::write_transaction(conn, |conn| {
        let row = get(conn, id)?;
        // Compare-and-set: of two revocations at once, one is recorded.
        if row.revoked || db::token::revoke_all(conn, &[id])? != 1 {
            return Err(Error::Conflict(format!("token {id} is already revoked")));
        }
        let owner = owner_of(conn, &row)?;
        let event = Event::on_user(
            event_name(&row, "revoked"),
            &owner,
            format!("Revoked {} with id {id}", kind_of(&row)),
        );
        audit::record(conn, actor, token_event(event, &row), now)?;
        get(conn, id)
    })
}

/// Rotates a token in one transaction: revokes it and creates its successor
/// with the same name, description, scopes, kind and restriction. The new expiry is the
/// one given, else today + 7 days.
pub fn rotate(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    actor: &Actor,
    id: i64,
    expires_at: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<(TokenRow, PlainToken)> {
    let today = now.date_naive();
    // The default week, cut to the instance's maximum lifetime if shorter
    // (as GitLab does); a date the caller gives is checked as on create.
    let expires_at = match expires_at {
        Some(d) => resolve_expiry(Some(d), settings, today)?,
        None => {
            let week = today + Duration::days(ROTATION_DEFAULT_DAYS);
            let latest = settings
                .max_personal_access_token_lifetime
                .map(|days| today + Duration::days(i64::from(days)));
            Some(latest.map_or(week, |l| l.min(week)))
        }
    };
    let plain = PlainToken::generate(&settings.personal_access_token_prefix)?;
    let digest = key.digest(&plain);
    let row = crate::db::write_transaction(conn, |conn| {
        let old = get(conn, id)?;
        if old.revoked {
            return Err(Error::Invalid("Token already revoked".into()));
        }
        // Compare-and-set: of two rotations at once, only one revokes.
        if db::token::revoke_all(conn, &[old.id])? != 1 {
            return Err(Error::Invalid("Token already revoked".into()));
        }
        let new = NewToken {
            user_id: old.user_id,
            name: &old.name,
            description: old.description.as_deref(),
            scopes: &old.scopes,
            token_digest: digest.as_str(),
            created_at: now.naive_utc(),
            expires_at,
            impersonation: old.impersonation,
            previous_token_id: Some(old.id),
            repositories: old.repositories.as_deref(),
            push_ref_patterns: old.push_ref_patterns.as_deref(),
        };
        let row = db::token::insert(conn, &new)?;
        let owner = owner_of(conn, &old)?;
        let event = Event::on_user(
            event_name(&old, "rotated"),
            &owner,
            format!(
                "Rotated {} with id {}: its successor is {}",
                kind_of(&old),
                old.id,
                row.id
            ),
        );
        let event = with_restriction(token_event(event, &old), &old)
            .with("new_token_id", row.id)
            .with(
                "new_expires_at",
                row.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
            );
        audit::record(conn, actor, event, now)?;
        Ok(row)
    })?;
    Ok((row, plain))
}

/// Every token linked to `start` by rotation: its ancestors and descendants.
fn family_ids(conn: &mut DbConn, start: &TokenRow) -> Result<Vec<i64>> {
    let mut root = start.clone();
    let mut ids = vec![root.id];
    while let Some(prev) = root.previous_token_id {
        if ids.contains(&prev) {
            break;
        }
        match db::token::find(conn, prev)? {
            Some(p) => {
                ids.push(p.id);
                root = p;
            }
            None => break,
        }
    }
    let mut cursor = start.id;
    while let Some(next) = db::token::find_successor(conn, cursor)? {
        if ids.contains(&next.id) {
            break;
        }
        ids.push(next.id);
        cursor = next.id;
    }
    Ok(ids)
}

/// Why a token did not authenticate. The caller shows one text for all of
/// them (no oracle), but logs and tests can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Unknown,
    Revoked,
    /// A rotated-away token was used: its whole family is now revoked.
    ReusedAfterRotation,
    Expired,
    UserBlocked,
}

pub enum AuthOutcome {
    Ok(Box<(TokenRow, User)>),
    Rejected(Rejection),
}

/// Authenticates a presented token string and records its use.
pub fn authenticate(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    secret: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AuthOutcome> {
    Ok(match verify(conn, key, settings, secret, ip, now)? {
        AuthOutcome::Ok(found) => {
            let (row, user) = *found;
            AuthOutcome::Ok(Box::new((note_use(conn, settings, row, ip, now)?, user)))
        }
        rejected => rejected,
    })
}

/// Records the use of an authenticated token (see [`record_use`]) and
/// answers the row as it now is. A failure to record is logged, not
/// raised: the request is authentic all the same.
pub fn note_use(
    conn: &mut DbConn,
    settings: &Settings,
    row: TokenRow,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TokenRow> {
    let throttle = Duration::minutes(i64::from(settings.personal_access_token_last_used_throttle_minutes));
    match record_use(conn, &row, ip, now, throttle) {
        Ok(false) => Ok(row),
        Ok(true) => Ok(db::token::find(conn, row.id)?.unwrap_or(row)),
        Err(e) => {
            tracing::warn!(token_id = row.id, "cannot record token use: {e}");
            Ok(db::token::find(conn, row.id)?.unwrap_or(row))
        }
    }
}

/// Authenticates a presented token string without recording its use (the
/// API records it once the endpoint's scope rule has passed, as GitLab
/// does). Reusing a rotated-away token still revokes its family.
pub fn verify(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    secret: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AuthOutcome> {
    use crate::metrics::AuthResult;
    let outcome = check_token(conn, key, settings, secret, ip, now)?;
    // An unknown string is counted by the caller, which knows whether it
    // could be a password instead.
    let counted = match &outcome {
        AuthOutcome::Ok(_) => Some(AuthResult::TokenOk),
        AuthOutcome::Rejected(Rejection::Unknown) => None,
        AuthOutcome::Rejected(Rejection::Revoked) => Some(AuthResult::TokenRevoked),
        AuthOutcome::Rejected(Rejection::ReusedAfterRotation) => Some(AuthResult::TokenReused),
        AuthOutcome::Rejected(Rejection::Expired) => Some(AuthResult::TokenExpired),
        AuthOutcome::Rejected(Rejection::UserBlocked) => Some(AuthResult::UserBlocked),
    };
    if let Some(r) = counted {
        crate::metrics::get().auth(r);
    }
    Ok(outcome)
}

fn check_token(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    secret: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AuthOutcome> {
    if secret.is_empty() || secret.len() > token::MAX_TOKEN_LEN {
        return Ok(AuthOutcome::Rejected(Rejection::Unknown));
    }
    let digest = key.digest(&PlainToken::new(secret));
    let Some(row) = db::token::find_by_digest(conn, digest.as_str())? else {
        return Ok(AuthOutcome::Rejected(Rejection::Unknown));
    };
    if row.revoked {
        if db::token::find_successor(conn, row.id)?.is_some() {
            let burnt = crate::db::write_transaction(conn, |conn| {
                let ids = family_ids(conn, &row)?;
                let mut live = Vec::new();
                for id in &ids {
                    if db::token::find(conn, *id)?.is_some_and(|t| !t.revoked) {
                        live.push(*id);
                    }
                }
                let burnt = db::token::revoke_all(conn, &ids)?;
                // The owner is told, once, from where; so is the audit log.
                if burnt > 0 {
                    crate::service::notify::queue_family_revoked(conn, row.id, ip, now)?;
                    let owner = owner_of(conn, &row)?;
                    let mut family = ids.clone();
                    family.sort_unstable();
                    live.sort_unstable();
                    let event = Event::on_user(
                        "personal_access_token_family_revoked",
                        &owner,
                        format!(
                            "Revoked the tokens {live:?}: the rotated-away token with id {} was used again",
                            row.id
                        ),
                    );
                    let event = token_event(event, &row)
                        .with("revoked_token_ids", live)
                        .with("family_token_ids", family);
                    audit::record(conn, &Actor::system(ip.map(str::to_string)), event, now)?;
                }
                Ok::<_, Error>(burnt)
            })?;
            // Said once, when it revoked something: later reuses find the
            // family revoked already.
            if burnt > 0 {
                tracing::warn!(
                    token_id = row.id,
                    user_id = row.user_id,
                    "a rotated-away token was used: its family is revoked"
                );
            }
            return Ok(AuthOutcome::Rejected(Rejection::ReusedAfterRotation));
        }
        return Ok(AuthOutcome::Rejected(Rejection::Revoked));
    }
    if settings.enforce_personal_access_token_expiration && is_expired(&row, now.date_naive()) {
        return Ok(AuthOutcome::Rejected(Rejection::Expired));
    }
    let Some(user) = db::user::find(conn, row.user_id)? else {
        return Ok(AuthOutcome::Rejected(Rejection::Unknown));
    };
    if user.is_blocked() {
        return Ok(AuthOutcome::Rejected(Rejection::UserBlocked));
    }
    Ok(AuthOutcome::Ok(Box::new((row, user))))
}

fn parse_ips(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Writes `last_used_at` at most once per `throttle`, and adds a new client
/// IP to the last five (at most once a minute), without a write when
/// neither is due; says whether it wrote.
pub fn record_use(
    conn: &mut DbConn,
    row: &TokenRow,
    ip: Option<&str>,
    now: DateTime<Utc>,
    throttle: Duration,
) -> Result<bool> {
    let now_n = now.naive_utc();
    let stamp_due = row.last_used_at.is_none_or(|t| now_n - t >= throttle);
    if stamp_due {
        db::token::set_last_used_at(conn, row.id, now_n)?;
    }
    let Some(ip) = ip else { return Ok(stamp_due) };
    let mut ips = parse_ips(&row.last_used_ips);
    let known = ips.iter().any(|i| i == ip);
    let ip_due = if known {
        // Keep the list in order of use, but only on a throttled write.
        stamp_due && ips.last().map(String::as_str) != Some(ip)
    } else {
        row.ips_updated_at.is_none_or(|t| now_n - t >= IP_RECORD_INTERVAL)
    };
    if ip_due {
        ips.retain(|i| i != ip);
        ips.push(ip.to_string());
        let excess = ips.len().saturating_sub(MAX_LAST_USED_IPS);
        ips.drain(..excess);
        let json = serde_json::to_string(&ips).map_err(anyhow::Error::from)?;
        db::token::set_last_used_ips(conn, row.id, &json, now_n)?;
    }
    Ok(stamp_due || ip_due)
}
