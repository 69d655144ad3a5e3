//! Leaked-token push protection (issue 18, item 2): what to do when a push
//! holds a live token of this instance. `git::leak_scan` finds the strings
//! of the token format in what a push adds; here each is looked up by
//! digest, and a live one (not revoked, not expired while expiry is
//! enforced, its owner there and not blocked: the rule authentication
//! follows) refuses the push, unless its pusher gave the push option
//! [`SKIP_OPTION`] on a private repository. In a public or internal
//! repository, or with the `revoke_leaked_tokens` setting, the token is
//! revoked at once. Either way its owner is told (a `leaked` notice) and
//! the leak is recorded in the audit log ([`record_leak`]). A revoked or expired token's
//! string is no leak: it opens nothing.

use chrono::{DateTime, Utc};

use crate::auth::token::{self, PlainToken, SecretKey};
use crate::db::{self, token::TokenRow, user::User, DbConn};
use crate::error::{Error, Result};
use crate::git::intake::Quarantine;
use crate::git::leak_scan::{self, Finding, Place, TokenFormat};
use crate::git::receive_pack::Screened;
use crate::service::{audit, notify, tokens, Conns};
use crate::settings::Settings;

/// GitLab's push option that lets a push through secret push protection.
pub const SKIP_OPTION: &str = "secret_push_protection.skip_all";
/// The audit event of a live token found in a push.
pub const LEAK_EVENT: &str = "personal_access_token_leaked";
/// The `ng` reason of every command of a refused push.
pub const REFUSED: &str = "secret push protection: a live access token is in this push";

/// The format of this instance's tokens: the configured prefix, and
/// `glpat-` too (tokens made before the prefix changed keep theirs), then
/// the 20 characters of a generated token.
pub fn token_format(settings: &Settings) -> TokenFormat {
    TokenFormat::new(
        &[settings.personal_access_token_prefix.as_str(), "glpat-"],
        token::GENERATED_LEN,
    )
}

/// A live token found in a push, its owner, and the index of its finding.
pub struct Live {
    pub token: TokenRow,
    pub owner: User,
    pub finding: usize,
}

/// The findings that are live tokens (read only; nothing is written).
pub fn live_tokens(
    conn: &mut DbConn,
    key: &SecretKey,
    settings: &Settings,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Result<Vec<Live>> {
    let mut out: Vec<Live> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        let digest = key.digest(&PlainToken::new(f.candidate.expose()));
        let Some(row) = db::token::find_by_digest(conn, digest.as_str())? else {
            continue;
        };
        let expired = settings.enforce_personal_access_token_expiration && tokens::is_expired(&row, now.date_naive());
        if row.revoked || expired || out.iter().any(|l| l.token.id == row.id) {
            continue;
        }
        match db::user::find(conn, row.user_id)? {
            Some(u) if !u.is_blocked() => out.push(Live {
                token: row,
                owner: u,
                finding: i,
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The push the leak was found in.
pub struct PushContext<'a> {
    /// The repository's path (`alice/tools`).
    pub repo: &'a str,
    /// `public`, `internal` or `private`.
    pub visibility: &'a str,
    pub pusher: &'a User,
    /// The pusher's address, for the audit log.
    pub ip: Option<std::net::IpAddr>,
    pub push_options: &'a [String],
}

/// The `ng` reason when the push could not be checked: it does not land.
pub const UNCHECKED: &str = "secret push protection could not check this push";

/// How many threads read a push's objects (each keeps a few MiB, at most 64).
fn scan_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(2)
}

/// The screen of a push (`receive_pack::conclude_screened`), when
/// `secret_push_protection_enabled`: scans the quarantine `q` of `repo`
/// (no connection held), looks the candidates up, and when some are live
/// tokens, locates them (from `tips`) and [`respond`]s. A push that cannot
/// be checked is refused.
#[allow(clippy::too_many_arguments)]
pub fn screen(
    mut db: Conns<'_>,
    key: &SecretKey,
    settings: &Settings,
    push: &PushContext<'_>,
    repo: &git2::Repository,
    q: &Quarantine,
    tips: &[git2::Oid],
    now: DateTime<Utc>,
) -> Screened {
    if !settings.secret_push_protection_enabled {
        return Screened::default();
    }
    let started = std::time::Instant::now();
    let format = token_format(settings);
    let findings = match leak_scan::scan(&format, &repo.path().join("objects"), q.dir(), scan_threads()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(repository = %push.repo, "cannot scan a push for tokens: {e}");
            return unchecked();
        }
    };
    tracing::debug!(
        repository = %push.repo,
        candidates = findings.len(),
        "scanned a push for tokens in {} ms",
        started.elapsed().as_millis()
    );
    if findings.is_empty() {
        return Screened::default();
    }
    let live = match db
        .get()
        .and_then(|mut c| live_tokens(&mut c, key, settings, &findings, now))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(repository = %push.repo, "cannot look up the tokens a push holds: {e}");
            return unchecked();
        }
    };
    if live.is_empty() {
        return Screened::default();
    }
    let found: Vec<Finding> = live.iter().map(|l| findings[l.finding].clone()).collect();
    let places = leak_scan::locate(repo, &found, tips);
    let leaks: Vec<Leak> = live
        .iter()
        .zip(&places)
        .map(|(l, place)| Leak {
            token: &l.token,
            owner: &l.owner,
            place,
        })
        .collect();
    match db.get().and_then(|mut c| respond(&mut c, settings, push, &leaks, now)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(repository = %push.repo, "cannot act on a leaked token: {e}");
            unchecked()
        }
    }
}

fn unchecked() -> Screened {
    Screened {
        refuse: Some(UNCHECKED.into()),
        notes: vec![format!(
            "{UNCHECKED}: nothing was written; try again, or ask an administrator"
        )],
    }
}

/// A live token, its owner, and where it was found.
pub struct Leak<'a> {
    pub token: &'a TokenRow,
    pub owner: &'a User,
    pub place: &'a Place,
}

/// Decides and does what the leaks of a push call for, in one
/// transaction: revokes where that is the rule, queues each owner's
/// notice, records each leak. Gives the refusal (or not) and the lines for
/// the pusher, which name each token's id and name and where it is, never
/// the token.
pub fn respond(
    conn: &mut DbConn,
    settings: &Settings,
    push: &PushContext<'_>,
    leaks: &[Leak<'_>],
    now: DateTime<Utc>,
) -> Result<Screened> {
    if leaks.is_empty() {
        return Ok(Screened::default());
    }
    let public = push.visibility != "private";
    let skipped = !public && push.push_options.iter().any(|o| o == SKIP_OPTION);
    let revoke = public || settings.revoke_leaked_tokens;
    db::write_transaction(conn, |conn| {
        for leak in leaks {
            if revoke {
                // gitpat revokes it (its own audit event); one revoked
                // meanwhile is revoked all the same.
                match tokens::revoke(conn, &audit::Actor::system(None), leak.token.id, now) {
                    Ok(_) | Err(Error::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            notify::queue_leaked(
                conn,
                leak.token.id,
                &notify::LeakNotice {
                    revoked: revoke,
                    skipped,
                    pusher: push.pusher.username.clone(),
                    repo: push.repo.to_string(),
                    place: leak.place.to_string(),
                },
                now,
            )?;
            record_leak(conn, push, leak, revoke, skipped, now)?;
        }
        Ok::<_, Error>(())
    })?;
    let mut notes = Vec::new();
    if skipped {
        notes.push(format!(
            "secret push protection skipped ({SKIP_OPTION}): this push holds a live access token"
        ));
    } else {
        notes.push("secret push protection: this push holds a live access token; nothing was written".into());
    }
    for leak in leaks {
        notes.push(format!(
            "  token {} \"{}\" {}{}",
            leak.token.id,
            leak.token.name,
            leak.place,
            if revoke { " (revoked now)" } else { "" }
        ));
    }
    if !skipped {
        notes.push("remove it from these commits (amend or rebase them) and push again".into());
        if !public {
            notes.push(format!(
                "or, to store it in this private repository anyway: git push -o {SKIP_OPTION}"
            ));
        }
    }
    notes.push(if revoke {
        "a revoked token works no more: its owner, who is told, must make a new one".into()
    } else {
        "the token's owner is told".into()
    });
    Ok(Screened {
        refuse: (!skipped).then(|| REFUSED.to_string()),
        notes,
    })
}

/// Records one leak in the audit log (in the transaction of its
/// revocation and notice): an event on the token's owner, by the pusher,
/// naming the repository, the token (id and name, never the token) and
/// where it was, and whether it was revoked or let through.
pub fn record_leak(
    conn: &mut DbConn,
    push: &PushContext<'_>,
    leak: &Leak<'_>,
    revoked: bool,
    skipped: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let actor = audit::Actor {
        via: None,
        ..audit::Actor::user(push.pusher, notify::Via::Api, push.ip.map(|ip| ip.to_string()))
    };
    let outcome = match (revoked, skipped) {
        (true, _) => "revoked",
        (false, true) => "let through with secret_push_protection.skip_all",
        (false, false) => "the push refused",
    };
    let event = audit::Event::on_user(
        LEAK_EVENT,
        leak.owner,
        format!(
            "Personal access token with id {} found in a push to {} {}: {outcome}",
            leak.token.id, push.repo, leak.place
        ),
    )
    .target(audit::TOKEN, Some(leak.token.id), leak.token.name.clone())
    .with("token_id", leak.token.id)
    .with("token_name", leak.token.name.clone())
    .with("repository", push.repo.to_string())
    .with("visibility", push.visibility.to_string())
    .with("place", leak.place.to_string())
    .with("revoked", revoked)
    .with("skipped", skipped);
    audit::record(conn, &actor, event, now)?;
    tracing::warn!(
        token_id = leak.token.id,
        owner_id = leak.token.user_id,
        pusher = %push.pusher.username,
        repository = %push.repo,
        revoked,
        skipped,
        "a live access token was pushed {}",
        leak.place
    );
    Ok(())
}
