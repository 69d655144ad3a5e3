//! `GET /audit_events` (administrators): GitLab's instance audit events,
//! newest first, filtered by `created_after`, `created_before` (both
//! inclusive), `entity_type` and `entity_id`, in offset pages.

use super::pagination::KeysetOrder;
use super::{ApiCall, ApiResult, Policy, Reply};
use crate::db::audit_event::AuditQuery;
use crate::service::audit;

pub async fn list(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        let p = cx.params;
        let q = AuditQuery {
            created_after: p.datetime("created_after")?.map(|d| d.naive_utc()),
            created_before: p.datetime("created_before")?.map(|d| d.naive_utc()),
            entity_type: p.one_of("entity_type", &audit::ENTITY_TYPES)?,
            entity_id: p.int("entity_id")?,
            ascending: false,
        };
        let (rows, info) = cx.fetch(&q, KeysetOrder::Unsupported)?;
        Reply::page(rows.iter().map(audit::view).collect(), info)
    })
    .await
}
