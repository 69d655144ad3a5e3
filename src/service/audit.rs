//! The audit log (issue 17, item 3): who created, rotated or revoked a
//! token, changed a user, two-factor authentication, a password or a
//! setting, signed in or failed to, used Sudo, or got banned, when, and
//! from where. An event is written in the transaction of the change it
//! records ([`record`] is called inside it), so a change that rolls back
//! leaves no event and no change goes unrecorded; failed sign-ins and bans
//! change no other row and are written alone.
//!
//! **No secret is ever in an event**: no token, digest, password (or its
//! hash), TOTP secret or code, recovery code or session id. The events are
//! built here and by their callers from names, ids, scopes, dates and
//! addresses only.
//!
//! Events older than the `audit_events_retention_days` setting are
//! deleted by [`purge`], which `serve` runs hourly.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::db::audit_event::{AuditEvent, AuditQuery, NewAuditEvent};
use crate::db::{self, user::User, DbConn};
use crate::error::Result;
use crate::settings::Settings;

pub use crate::service::notify::Via;

/// The entity type of events about a user (and their tokens).
pub const USER: &str = "User";
/// The entity type of events about the instance (settings, bans,
/// sign-ins of unknown logins), GitLab's name for it.
pub const INSTANCE: &str = "Gitlab::Audit::InstanceScope";
/// The instance's entity id.
pub const INSTANCE_ID: i64 = 1;
pub const TOKEN: &str = "PersonalAccessToken";

/// The author name of events that no person caused (the first
/// administrator, a family revocation).
pub const SYSTEM: &str = "gitpat";
/// The author name of the command line's events.
pub const CLI: &str = "cli";

/// Who makes a change, and from where: the author of its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<i64>,
    /// The author's username, or [`CLI`] / [`SYSTEM`].
    pub name: String,
    pub email: Option<String>,
    /// The client's address (none from the command line).
    pub ip: Option<String>,
    /// Where the change came from (none for gitpat's own).
    pub via: Option<Via>,
    /// The administrator acting as `user_id` through Sudo.
    pub sudo_by: Option<String>,
}

impl Actor {
    /// The command line: no user, no address.
    pub fn cli() -> Actor {
        Actor {
            user_id: None,
            name: CLI.into(),
            email: None,
            ip: None,
            via: Some(Via::Cli),
            sudo_by: None,
        }
    }

    /// gitpat itself (the first administrator, a family revocation).
    pub fn system(ip: Option<String>) -> Actor {
        Actor {
            name: SYSTEM.into(),
            ip,
            via: None,
            ..Actor::cli()
        }
    }

    /// A signed-in user (the pages) or a token's user (the API).
    pub fn user(u: &User, via: Via, ip: Option<String>) -> Actor {
        Actor {
            user_id: Some(u.id),
            name: u.username.clone(),
            email: Some(u.email.clone()),
            ip,
            via: Some(via),
            sudo_by: None,
        }
    }

    /// Is this actor the user `id` (not an administrator acting on them)?
    pub fn is(&self, id: i64) -> bool {
        self.user_id == Some(id)
    }
}

/// One event, before it is written.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: &'static str,
    pub entity_type: &'static str,
    pub entity_id: i64,
    pub entity_path: Option<String>,
    pub target_type: Option<&'static str>,
    pub target_id: Option<i64>,
    pub target_details: Option<String>,
    /// A sentence for a person (GitLab's `custom_message`).
    pub message: String,
    /// The event's own fields (scopes, from/to, ...).
    pub extra: Map<String, Value>,
}

impl Event {
    /// An event about user `u`.
    pub fn on_user(name: &'static str, u: &User, message: impl Into<String>) -> Event {
        Event {
            name,
            entity_type: USER,
            entity_id: u.id,
            entity_path: Some(u.username.clone()),
            target_type: Some(USER),
            target_id: Some(u.id),
            target_details: Some(u.username.clone()),
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// An event about the instance.
    pub fn on_instance(name: &'static str, message: impl Into<String>) -> Event {
        Event {
            name,
            entity_type: INSTANCE,
            entity_id: INSTANCE_ID,
            entity_path: None,
            target_type: None,
            target_id: None,
            target_details: None,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn target(mut self, kind: &'static str, id: Option<i64>, details: impl Into<String>) -> Event {
        self.target_type = Some(kind);
        self.target_id = id;
        self.target_details = Some(details.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

/// At most this many characters of text a client chose (a login name) go
/// into an event.
pub const MAX_TEXT: usize = 255;

/// `s` cut to [`MAX_TEXT`] characters, control characters dropped.
pub fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect()
}

/// Writes `event` by `actor` at `now`. Call it inside the transaction of
/// the change it records.
pub fn record(conn: &mut DbConn, actor: &Actor, event: Event, now: DateTime<Utc>) -> Result<()> {
    let mut details = event.extra;
    details.insert("custom_message".into(), json!(event.message));
    if let Some(via) = actor.via {
        details.insert("via".into(), json!(via.as_str()));
    }
    if let Some(e) = &actor.email {
        details.insert("author_email".into(), json!(e));
    }
    if let Some(admin) = &actor.sudo_by {
        details.insert("impersonated_by".into(), json!(admin));
    }
    let details = Value::Object(details).to_string();
    db::audit_event::insert(
        conn,
        &NewAuditEvent {
            author_id: actor.user_id,
            author_name: &actor.name,
            entity_type: event.entity_type,
            entity_id: event.entity_id,
            entity_path: event.entity_path.as_deref(),
            event_name: event.name,
            target_type: event.target_type,
            target_id: event.target_id,
            target_details: event.target_details.as_deref(),
            ip_address: actor.ip.as_deref(),
            details: &details,
            created_at: now.naive_utc(),
        },
    )?;
    Ok(())
}

/// An event as GitLab's audit events API shows it: `id`, `author_id`,
/// `entity_id`, `entity_type`, `event_name`, `details` (`author_name`,
/// `author_email`, `target_id`, `target_type`, `target_details`,
/// `ip_address`, `entity_path`, `custom_message` and the event's own
/// fields), `created_at`.
pub fn view(e: &AuditEvent) -> Value {
    let mut details = match serde_json::from_str::<Value>(&e.details) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    details.insert("author_name".into(), json!(e.author_name));
    details.insert(
        "author_class".into(),
        json!(if e.author_id.is_some() { "User" } else { "System" }),
    );
    details.insert("target_id".into(), json!(e.target_id));
    details.insert("target_type".into(), json!(e.target_type));
    details.insert("target_details".into(), json!(e.target_details));
    details.insert("ip_address".into(), json!(e.ip_address));
    details.insert("entity_path".into(), json!(e.entity_path));
    json!({
        "id": e.id,
        "author_id": e.author_id,
        "entity_id": e.entity_id,
        "entity_type": e.entity_type,
        "event_name": e.event_name,
        "details": Value::Object(details),
        "created_at": crate::service::tokens::iso(e.created_at),
    })
}

/// The event's sentence (kept in `details` as `custom_message`).
fn message_of(e: &AuditEvent) -> Option<String> {
    serde_json::from_str::<Value>(&e.details)
        .ok()
        .and_then(|v| v["custom_message"].as_str().map(str::to_string))
}

/// The `entity_type` filter's values, GitLab's: gitpat records events
/// about users and the instance only, so `Group` and `Project` find none.
pub const ENTITY_TYPES: [&str; 4] = [USER, "Group", "Project", INSTANCE];

/// The events of `q` (at most `limit`), newest first.
pub fn list(conn: &mut DbConn, q: &AuditQuery, limit: Option<i64>) -> Result<Vec<AuditEvent>> {
    use crate::db::page::Listing;
    Ok(q.rows(conn, 0, limit)?)
}

/// The event `id`, if there is one.
pub fn find(conn: &mut DbConn, id: i64) -> Result<Option<AuditEvent>> {
    Ok(db::audit_event::find(conn, id)?)
}

/// One line of `gitpat audit list`: time, event, author, entity, target,
/// address, message.
pub fn line(e: &AuditEvent) -> Vec<String> {
    vec![
        e.id.to_string(),
        crate::service::tokens::iso(e.created_at),
        e.event_name.clone(),
        e.author_name.clone(),
        format!("{} {}", e.entity_type, e.entity_id),
        match (&e.target_type, &e.target_details) {
            (Some(t), Some(d)) => format!("{t} {d}"),
            (Some(t), None) => t.clone(),
            _ => "-".into(),
        },
        e.ip_address.clone().unwrap_or_else(|| "-".into()),
        message_of(e).unwrap_or_default(),
    ]
}

/// Deletes the events older than `audit_events_retention_days` at `now`;
/// answers how many.
pub fn purge(conn: &mut DbConn, settings: &Settings, now: DateTime<Utc>) -> Result<usize> {
    let cutoff = now - Duration::days(i64::from(settings.audit_events_retention_days));
    Ok(db::audit_event::delete_before(conn, cutoff.naive_utc())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn purge_deletes_only_events_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::establish(&db::sqlite_url_for(dir.path())).unwrap();
        db::migrate(&mut conn).unwrap();
        let now = at(2027, 6, 1);
        // Ages in seconds: just inside the default year, at its edge, just
        // past it, and far past it.
        let year = 365 * 86_400;
        for (i, age) in [0, year - 1, year, year + 1, 3 * year].iter().enumerate() {
            let e = Event::on_instance("test_event", format!("event {i}"));
            record(&mut conn, &Actor::cli(), e, now - Duration::seconds(*age)).unwrap();
        }
        let settings = Settings::default();
        assert_eq!(settings.audit_events_retention_days, 365);
        let left = |conn: &mut DbConn| -> Vec<String> {
            list(conn, &AuditQuery::default(), None)
                .unwrap()
                .iter()
                .map(|e| message_of(e).unwrap_or_default())
                .collect()
        };
        // Nothing is old yet a year earlier.
        assert_eq!(purge(&mut conn, &settings, now - Duration::days(3 * 365)).unwrap(), 0);
        // Older than exactly a year goes; a year old to the second stays.
        assert_eq!(purge(&mut conn, &settings, now).unwrap(), 2);
        assert_eq!(left(&mut conn), ["event 2", "event 1", "event 0"]);
        // Running it again at the same instant deletes nothing more.
        assert_eq!(purge(&mut conn, &settings, now).unwrap(), 0);
        // A shorter retention, a day later: only today's event stays.
        let mut short = settings.clone();
        short.set("audit_events_retention_days", "1").unwrap();
        assert_eq!(purge(&mut conn, &short, now + Duration::hours(12)).unwrap(), 2);
        assert_eq!(left(&mut conn), ["event 0"]);
    }

    #[test]
    fn events_show_in_gitlabs_shape() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::establish(&db::sqlite_url_for(dir.path())).unwrap();
        db::migrate(&mut conn).unwrap();
        let actor = Actor {
            user_id: Some(7),
            name: "root".into(),
            email: Some("admin@example.com".into()),
            ip: Some("192.0.2.1".into()),
            via: Some(Via::Api),
            sudo_by: None,
        };
        let e = Event::on_instance("application_setting_updated", "Changed x from 1 to 2")
            .target("ApplicationSetting", None, "x")
            .with("from", "1")
            .with("to", "2");
        record(&mut conn, &actor, e, at(2027, 1, 2)).unwrap();
        let rows = list(&mut conn, &AuditQuery::default(), None).unwrap();
        let v = view(&rows[0]);
        assert_eq!(
            v,
            json!({
                "id": rows[0].id,
                "author_id": 7,
                "entity_id": 1,
                "entity_type": "Gitlab::Audit::InstanceScope",
                "event_name": "application_setting_updated",
                "details": {
                    "author_name": "root",
                    "author_email": "admin@example.com",
                    "author_class": "User",
                    "target_id": null,
                    "target_type": "ApplicationSetting",
                    "target_details": "x",
                    "ip_address": "192.0.2.1",
                    "entity_path": null,
                    "custom_message": "Changed x from 1 to 2",
                    "from": "1",
                    "to": "2",
                    "via": "api",
                },
                "created_at": "2027-01-02T12:00:00.000Z",
            })
        );
    }

    #[test]
    fn clip_bounds_client_text() {
        assert_eq!(clip("a\nb"), "ab");
        assert_eq!(clip(&"x".repeat(300)).len(), MAX_TEXT);
    }
}
