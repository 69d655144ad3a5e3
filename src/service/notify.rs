//! Token notices by mail (issue 15): expiring in 60, 30 and 7 days (the
//! `token_expiry_notify_days` setting), expired today, a new token made,
//! a rotated-away token reused (its family revoked), and a live token found
//! in a push (`leaked`, issue 18).
//!
//! Each notice is a row per token and kind (`db::notification`), queued by
//! the daily checks or by the change that calls for it, then sent by
//! [`deliver`]: claim (compare-and-set) → send with no connection held →
//! mark sent, so that several instances send each mail once; a claim older
//! than [`CLAIM_TTL`] is taken again (its sender died), and a failed send
//! is retried with backoff. Revoked tokens (but for the revocation notice)
//! and blocked users get nothing; nor does a notice that waited longer
//! than [`MAX_AGE`] for mail to be configured.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use maud::html;

use crate::auth::token::{self, Scope};
use crate::db::{self, notification::Notification, token::TokenRow, user::User, DbConn};
use crate::error::{Error, Result};
use crate::mail::{Mail, Mailer};
use crate::service::{tokens, Conns};
use crate::settings::Settings;

pub const CLAIM_TTL: Duration = Duration::hours(1);
pub const MAX_AGE: Duration = Duration::days(7);
pub const EXPIRED: &str = "expired";
pub const CREATED: &str = "created";
pub const FAMILY_REVOKED: &str = "family_revoked";
/// A live token was found in a push (leaked-token push protection).
pub const LEAKED: &str = "leaked";
/// The daily checks, and the time of day (UTC) from which each runs.
pub const EXPIRING_JOB: (&str, u32) = ("token_expiring", 1);
pub const EXPIRED_JOB: (&str, u32) = ("token_expired", 2);

/// `expiring_7d` and the like.
pub fn expiring_kind(days: u32) -> String {
    format!("expiring_{days}d")
}

/// How a token came to be, for its owner's notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Web,
    Api,
    Cli,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Web => "web",
            Via::Api => "api",
            Via::Cli => "cli",
        }
    }

    fn words(s: &str) -> &'static str {
        match s {
            "web" => "on the access tokens page",
            "api" => "through the API",
            _ => "with the gitpat command line",
        }
    }
}

/// Queues the "new token" notice of `row`, made `via`, by `by` when that
/// is not the owner (an administrator).
pub fn queue_created(conn: &mut DbConn, row: &TokenRow, via: Via, by: Option<&str>, now: DateTime<Utc>) -> Result<()> {
    let detail = format!("{}|{}", via.as_str(), by.unwrap_or(""));
    db::notification::queue(conn, row.id, CREATED, Some(&detail), now.naive_utc())?;
    Ok(())
}

/// Queues the security notice of a reused rotated-away token.
pub fn queue_family_revoked(conn: &mut DbConn, token_id: i64, ip: Option<&str>, now: DateTime<Utc>) -> Result<()> {
    db::notification::queue(conn, token_id, FAMILY_REVOKED, ip, now.naive_utc())?;
    Ok(())
}

/// What the `leaked` notice says: kept in the notice's `detail` as
/// `revoked|skipped|pusher|repository|place` (the place last: a path may
/// hold `|`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakNotice {
    pub revoked: bool,
    pub skipped: bool,
    pub pusher: String,
    pub repo: String,
    /// Where in the push: "in <path> at commit <id>", "in the message of
    /// commit <id>", ...
    pub place: String,
}

impl LeakNotice {
    fn to_detail(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            u8::from(self.revoked),
            u8::from(self.skipped),
            self.pusher,
            self.repo,
            self.place
        )
    }

    fn from_detail(d: &str) -> LeakNotice {
        let mut p = d.splitn(5, '|');
        let mut next = || p.next().unwrap_or("").to_string();
        LeakNotice {
            revoked: next() == "1",
            skipped: next() == "1",
            pusher: next(),
            repo: next(),
            place: next(),
        }
    }
}

/// Queues the notice of a live token found in a push (once per token: a
/// later leak of the same token is recorded, not mailed again).
pub fn queue_leaked(conn: &mut DbConn, token_id: i64, notice: &LeakNotice, now: DateTime<Utc>) -> Result<()> {
    db::notification::queue(conn, token_id, LEAKED, Some(&notice.to_detail()), now.naive_utc())?;
    Ok(())
}

/// Live tokens (not revoked, their owner not blocked) expiring from `from`
/// to `to`; the owners are looked up for those tokens only.
fn live_tokens(conn: &mut DbConn, from: NaiveDate, to: NaiveDate) -> Result<Vec<(TokenRow, User)>> {
    let mut owners: std::collections::HashMap<i64, Option<User>> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for t in db::token::live_expiring_between(conn, from, to)? {
        let owner = match owners.entry(t.user_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(db::user::find(conn, t.user_id)?),
        };
        if let Some(u) = owner.as_ref().filter(|u| !u.is_blocked()) {
            out.push((t, u.clone()));
        }
    }
    Ok(out)
}

/// The expiring check as of `at`: each live token whose expiry is within
/// a window gets the notice of the smallest window it is in, once. How
/// many were queued.
pub fn check_expiring(conn: &mut DbConn, settings: &Settings, at: DateTime<Utc>) -> Result<usize> {
    if !settings.token_expiry_notifications_enabled {
        return Ok(0);
    }
    let today = at.date_naive();
    let mut days = settings.token_expiry_notify_days.clone();
    days.sort_unstable();
    let mut queued = 0;
    let widest = days.last().copied().unwrap_or(0);
    for (t, _) in live_tokens(
        conn,
        today + Duration::days(1),
        today + Duration::days(i64::from(widest)),
    )? {
        let Some(expires) = t.expires_at else { continue };
        let left = (expires - today).num_days();
        if left <= 0 {
            continue;
        }
        if let Some(w) = days.iter().find(|w| i64::from(**w) >= left) {
            if db::notification::queue(conn, t.id, &expiring_kind(*w), None, at.naive_utc())? {
                queued += 1;
            }
        }
    }
    Ok(queued)
}

/// The expired check as of `at`: live tokens that expired today (or
/// yesterday, when yesterday's check was missed) get the notice, once.
pub fn check_expired(conn: &mut DbConn, settings: &Settings, at: DateTime<Utc>) -> Result<usize> {
    if !settings.token_expiry_notifications_enabled {
        return Ok(0);
    }
    let today = at.date_naive();
    let mut queued = 0;
    for (t, _) in live_tokens(conn, today - Duration::days(1), today)? {
        if t.expires_at
            .is_some_and(|d| d <= today && d >= today - Duration::days(1))
            && db::notification::queue(conn, t.id, EXPIRED, None, at.naive_utc())?
        {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Runs the daily checks that are due at `at` and not run yet today (by
/// any instance): the expiring one from 01:00 UTC, the expired one from
/// 02:00. A check missed while the server was down runs at the next call.
pub fn run_due_checks(conn: &mut DbConn, settings: &Settings, at: DateTime<Utc>) -> Result<usize> {
    use chrono::Timelike;
    let mut queued = 0;
    for (job, hour) in [EXPIRING_JOB, EXPIRED_JOB] {
        if at.hour() < hour || !db::notification::claim_day(conn, job, at.date_naive())? {
            continue;
        }
        queued += if job == EXPIRING_JOB.0 {
            check_expiring(conn, settings, at)?
        } else {
            check_expired(conn, settings, at)?
        };
    }
    Ok(queued)
}

/// What [`deliver`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// Where the mails link to and what they call the instance.
pub struct Site {
    pub name: String,
    pub tokens_url: String,
    pub from: String,
}

impl Site {
    pub fn new(external_url: Option<&str>, from: String) -> Site {
        let base = external_url.unwrap_or("http://127.0.0.1:8080").trim_end_matches('/');
        let name = base.split_once("://").map_or(base, |(_, h)| h).to_string();
        Site {
            name,
            tokens_url: format!("{base}/-/user_settings/personal_access_tokens"),
            from,
        }
    }
}

fn backoff(attempts: i32) -> Duration {
    let n = attempts.clamp(1, 7) - 1;
    Duration::minutes((1i64 << n).min(60))
}

/// Sends what is due at `now`, with `mailer`. Connections are taken for
/// the claims and marks only, never while a mail is sent. The first
/// failed send ends the round (the rest stay due).
pub fn deliver(
    mut db: Conns<'_>,
    mailer: &Mailer,
    site: &Site,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Delivered> {
    let mut out = Delivered::default();
    if !mailer.is_on() {
        return Ok(out);
    }
    let at = now.naive_utc();
    let stale = at - CLAIM_TTL;
    let due = db::notification::due(&mut *db.get()?, at, stale, 500)?;
    for id in due {
        let mut conn = db.get()?;
        let Some(n) = db::notification::claim(&mut conn, id, at, stale)? else {
            continue;
        };
        let Some(t) = db::token::find(&mut conn, n.token_id)? else {
            db::notification::finish(&mut conn, n.id, "token gone", at)?;
            out.skipped += 1;
            continue;
        };
        let Some(u) = db::user::find(&mut conn, t.user_id)? else {
            db::notification::finish(&mut conn, n.id, "user gone", at)?;
            out.skipped += 1;
            continue;
        };
        let skip = if u.is_blocked() {
            Some("user blocked")
        } else if t.revoked && n.kind != FAMILY_REVOKED && n.kind != LEAKED {
            Some("token revoked")
        } else if at - n.created_at > MAX_AGE {
            Some("too old")
        } else {
            None
        };
        if let Some(why) = skip {
            db::notification::finish(&mut conn, n.id, why, at)?;
            out.skipped += 1;
            continue;
        }
        drop(conn);
        let mail = render(&n, &t, &u, site, settings, now.date_naive())?;
        let sent = mailer.send(&site.from, &mail);
        crate::metrics::get().mail(sent.is_ok());
        let mut conn = db.get()?;
        match sent {
            Ok(()) => {
                db::notification::finish(&mut conn, n.id, "sent", at)?;
                if n.kind == EXPIRED {
                    db::token::set_notified(&mut conn, t.id, true)?;
                } else if n.kind.starts_with("expiring_") {
                    db::token::set_notified(&mut conn, t.id, false)?;
                }
                tracing::info!(token_id = t.id, kind = %n.kind, "token notice sent");
                out.sent += 1;
            }
            Err(e) => {
                let next = at + backoff(n.attempts);
                let why = without_addresses(&e.to_string());
                db::notification::retry_at(&mut conn, n.id, next, &why)?;
                tracing::warn!(token_id = t.id, kind = %n.kind, attempt = n.attempts, "token notice not sent, retried at {next}: {why}");
                out.failed += 1;
                // The mail server is likely down or refusing: the rest wait
                // for the next round rather than each for a timeout.
                break;
            }
        }
    }
    Ok(out)
}

/// `text` with every e-mail address (a word holding `@`) replaced: a mail
/// server's refusal often quotes the recipient, and logs keep none.
fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn scopes_of(t: &TokenRow) -> String {
    token::scopes_from_db(&t.scopes)
        .into_iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The mail of notice `n` (plain text and HTML): the instance, the token's
/// name, scopes and expiry, a link to the tokens page; never the token.
pub fn render(
    n: &Notification,
    t: &TokenRow,
    u: &User,
    site: &Site,
    _settings: &Settings,
    today: NaiveDate,
) -> Result<Mail> {
    let expiry = t
        .expires_at
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "never".into());
    let (subject, lead): (String, String) = match n.kind.as_str() {
        k if k.starts_with("expiring_") => {
            let left = t.expires_at.map(|d| (d - today).num_days()).unwrap_or(0);
            (
                format!("Your personal access token \"{}\" expires in {} day{}", t.name, left, if left == 1 { "" } else { "s" }),
                format!(
                    "Your personal access token \"{}\" on {} expires on {expiry} at 00:00 UTC, in {left} day{}. Rotate it or make a new one before then, or whatever uses it stops working.",
                    t.name,
                    site.name,
                    if left == 1 { "" } else { "s" }
                ),
            )
        }
        EXPIRED => (
            format!("Your personal access token \"{}\" has expired", t.name),
            format!(
                "Your personal access token \"{}\" on {} expired today ({expiry}). Whatever used it no longer can; make a new one if it is still needed.",
                t.name, site.name
            ),
        ),
        CREATED => {
            let detail = n.detail.clone().unwrap_or_default();
            let (via, by) = detail.split_once('|').unwrap_or((detail.as_str(), ""));
            let who = match (t.impersonation, by) {
                (true, "") => "as an impersonation token, by an administrator".to_string(),
                (true, admin) => format!("as an impersonation token, by the administrator {admin}"),
                (false, "") if via == "cli" => "by an administrator".to_string(),
                (false, "") => "by you".to_string(),
                (false, admin) => format!("by the administrator {admin}"),
            };
            (
                "A new personal access token has been created".to_string(),
                format!(
                    "A new personal access token \"{}\" was created for your account on {} {}, {who}. If you did not expect this, revoke it at once and change your password.",
                    t.name,
                    site.name,
                    Via::words(via)
                ),
            )
        }
        FAMILY_REVOKED => {
            let from = n.detail.clone().unwrap_or_else(|| "an unknown address".into());
            (
                "Your personal access token was revoked: a rotated-away token was used".to_string(),
                format!(
                    "A personal access token of your account on {} that had been replaced by rotation was used again, from {from}. It may have leaked, so \"{}\" and every token rotated from the same one are revoked. Make a new token for whatever needs one.",
                    site.name, t.name
                ),
            )
        }
        LEAKED => {
            let l = LeakNotice::from_detail(n.detail.as_deref().unwrap_or(""));
            let what = if l.revoked {
                "It has been revoked, since a token pushed there is as good as public (the repository is public or internal, or this instance revokes leaked tokens): make a new one for whatever used it."
            } else if l.skipped {
                "The pusher chose to store it in that private repository anyway: whoever can read it can use the token. Revoke it and make a new one unless that is what you want."
            } else {
                "The push was refused, so the token was not stored; but it is in the pusher's commits. Revoke it and make a new one if they should not have it."
            };
            (
                format!("Your personal access token \"{}\" was found in a push", t.name),
                format!(
                    "Your personal access token \"{}\" on {} was found in a push by {} to {}, {}. {what}",
                    t.name, site.name, l.pusher, l.repo, l.place
                ),
            )
        }
        other => return Err(Error::Internal(anyhow::anyhow!("unknown notice kind {other:?}"))),
    };
    let text = format!(
        "Hi {},\n\n{lead}\n\nToken: {}\nScopes: {}\nExpires: {expiry}\n\nYour tokens: {}\n\n-- \ngitpat at {}\n",
        u.name,
        t.name,
        scopes_of(t),
        site.tokens_url,
        site.name
    );
    let html = html! {
        p { "Hi " (u.name) "," }
        p { (lead) }
        table {
            tr { th align="left" { "Token" } td { (t.name) } }
            tr { th align="left" { "Scopes" } td { (scopes_of(t)) } }
            tr { th align="left" { "Expires" } td { (expiry) } }
        }
        p { a href=(site.tokens_url) { "Your personal access tokens" } }
        p { small { "gitpat at " (site.name) } }
    }
    .into_string();
    Ok(Mail {
        to: u.email.clone(),
        to_name: u.name.clone(),
        subject,
        text,
        html,
    })
}

/// The mail notice `kind` of token `token_id` would be (for `notify
/// preview`), as of `now`.
pub fn preview(
    conn: &mut DbConn,
    site: &Site,
    settings: &Settings,
    token_id: i64,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<Mail> {
    let t = tokens::get(conn, token_id)?;
    let u = db::user::find(conn, t.user_id)?.ok_or_else(|| Error::NotFound("the token's user is gone".into()))?;
    let known = kind == EXPIRED
        || kind == CREATED
        || kind == FAMILY_REVOKED
        || kind == LEAKED
        || kind
            .strip_prefix("expiring_")
            .and_then(|r| r.strip_suffix('d'))
            .is_some_and(|d| d.parse::<u32>().is_ok());
    if !known {
        return Err(Error::Invalid(format!(
            "unknown notice kind {kind:?}: expiring_<days>d, {EXPIRED}, {CREATED}, {FAMILY_REVOKED} or {LEAKED}"
        )));
    }
    let detail = if kind == LEAKED {
        LeakNotice {
            revoked: false,
            skipped: false,
            pusher: u.username.clone(),
            repo: format!("{}/project", u.username),
            place: format!("in config/ci.yml at commit {}", "0".repeat(40)),
        }
        .to_detail()
    } else {
        "cli|".into()
    };
    let n = Notification {
        id: 0,
        token_id,
        kind: kind.to_string(),
        detail: Some(detail),
        created_at: now.naive_utc(),
        claimed_at: None,
        sent_at: None,
        outcome: None,
        attempts: 0,
        next_attempt_at: now.naive_utc(),
    };
    render(&n, &t, &u, site, settings, now.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_without_addresses() {
        assert_eq!(
            without_addresses("permanent error (550): 5.1.1 <alice@example.com>: Recipient address rejected"),
            "permanent error (550): 5.1.1 <address> Recipient address rejected"
        );
    }

    #[test]
    fn leak_notices_keep_their_place_whole() {
        let n = LeakNotice {
            revoked: true,
            skipped: false,
            pusher: "bob".into(),
            repo: "alice/tools".into(),
            place: "in a|b.txt at commit 1234".into(),
        };
        assert_eq!(n.to_detail(), "1|0|bob|alice/tools|in a|b.txt at commit 1234");
        assert_eq!(LeakNotice::from_detail(&n.to_detail()), n);
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let mins: Vec<i64> = (1..=9).map(|a| backoff(a).num_minutes()).collect();
        assert_eq!(mins, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
