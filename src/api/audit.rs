//! `GET /audit_events` (administrators): GitLab's instance audit events,
//! newest first, filtered by `created_after`, `created_before` (both
//! inclusive), `entity_type` and `entity_id` (which needs an
//! `entity_type`, as GitLab's), in offset pages or keyset pages by id;
//! `GET /audit_events/:id`: one.

use super::pagination::KeysetOrder;
use super::{ApiCall, ApiError, ApiResult, Policy, Reply};
use crate::db::audit_event::AuditQuery;
use crate::service::audit;

pub async fn list(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        let p = cx.params;
        let entity_type = p.one_of("entity_type", &audit::ENTITY_TYPES)?;
        let entity_id = p.int("entity_id")?;
        if entity_id.is_some() && entity_type.is_none() {
            return Err(ApiError::Missing(vec!["entity_type".into()]));
        }
        let q = AuditQuery {
            created_after: p.datetime("created_after")?.map(|d| d.naive_utc()),
            created_before: p.datetime("created_before")?.map(|d| d.naive_utc()),
            entity_type,
            entity_id,
            id_after: None,
            id_before: p.int("id_before")?,
            ascending: false,
        };
        let (rows, info) = cx.fetch(&q, KeysetOrder::ById { desc: true })?;
        Reply::page(rows.iter().map(audit::view).collect(), info)
    })
    .await
}

pub async fn show(call: ApiCall) -> ApiResult {
    call.run(Policy::Api, |cx| {
        cx.me()?.require_admin()?;
        let id = cx.id("id", "Audit Event")?;
        let e = audit::find(cx.conn, id)?.ok_or_else(|| ApiError::not_found("Audit Event"))?;
        Reply::ok(audit::view(&e))
    })
    .await
}
