//! `GET /me/events`: the caller's security events, newest first, a page at a time.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::problem::Problem;
use super::responses::{private_json, timestamp};
use crate::auth::events::{self, MAX_PAGE};
use crate::auth::sessions::Caller;
use crate::db::security_events::SecurityEvent;
use crate::domain::EventKind;
use crate::error::{Error, FieldError};

const DEFAULT_PAGE: usize = 20;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SecurityEvent)]
pub struct EventBody {
    /// A UUIDv7: ids sort in time order.
    #[schema(format = Uuid)]
    id: String,
    #[serde(rename = "type")]
    kind: EventKind,
    #[schema(format = DateTime)]
    at: String,
    /// The client's address; `null` for what an operator did.
    #[schema(required = true, examples("127.0.0.1"))]
    ip: Option<String>,
    #[schema(required = true, examples("curl/8.5.0"))]
    user_agent: Option<String>,
    /// The session concerned: the one opened, ended or revoked, or the one that acted.
    #[schema(required = true, format = Uuid)]
    session_id: Option<String>,
}

impl From<SecurityEvent> for EventBody {
    fn from(event: SecurityEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            at: timestamp(event.at),
            ip: event.ip,
            user_agent: event.user_agent,
            session_id: event.session_id.map(String::from),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SecurityEventPage)]
pub struct EventPageBody {
    /// Newest first.
    events: Vec<EventBody>,
    /// Pass it as `before` for the next (older) page; `null` on the last page.
    #[schema(required = true, format = Uuid)]
    next: Option<String>,
}

/// What the query asks for, checked.
#[derive(Debug, PartialEq, Eq)]
struct PageQuery {
    limit: usize,
    before: Option<String>,
}

impl PageQuery {
    /// `limit` and `before`, each at most once (the last one counts); other parameters are
    /// ignored, like unknown JSON fields. Every bad parameter is reported in one `422`.
    fn parse(query: &str) -> Result<Self, Error> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| Error::MalformedRequest("The query string could not be read.".into()))?
            .into_inner();
        let (mut limit, mut before) = (None, None);
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => limit = Some(value),
                "before" => before = Some(value),
                _ => {}
            }
        }
        let mut errors = Vec::new();
        let limit = match limit {
            None => Some(DEFAULT_PAGE),
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE).contains(limit))
                .or_else(|| {
                    errors.push(FieldError::new(
                        "limit",
                        "out_of_range",
                        "limit must be a whole number from 1 to 100",
                    ));
                    None
                }),
        };
        // Event ids are UUIDs in canonical lowercase text; any other spelling is read as one.
        let before = match before {
            None => None,
            Some(raw) => match uuid::Uuid::try_parse(raw.trim()) {
                Ok(id) => Some(id.to_string()),
                Err(_) => {
                    errors.push(FieldError::new(
                        "before",
                        "invalid_event_id",
                        "before must be the id of an event, as given in `next`",
                    ));
                    None
                }
            },
        };
        match limit {
            Some(limit) if errors.is_empty() => Ok(Self { limit, before }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// The caller's security events, newest first.
///
/// Signups, logins, failed logins (wrong password), lockouts (at most one per login
/// window), refresh-token reuse, logouts, sessions revoked (by another session, a password
/// change or an operator) and password changes; kept for `LATCHKEY_EVENT_RETENTION` (90 days
/// by default). Failed logins and lockouts are written just after their answer, so they may
/// take a moment to appear.
///
/// `before` is a position: the page holds the caller's events older than that id, so a
/// page stays valid when the event it names has been pruned meanwhile, and an id that is
/// not one of the caller's events shows nothing of anybody else's.
#[utoipa::path(get, path = "/me/events", tag = "account", operation_id = "listEvents",
    params(
        ("limit" = Option<u32>, Query, description = "How many events, 1 to 100; 20 when left out.",
            minimum = 1, maximum = 100),
        ("before" = Option<String>, Query, format = Uuid,
            description = "The `next` of the previous page: only older events are returned."),
    ),
    responses(
        (status = 200, description = "A page of events.", body = EventPageBody,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        (status = 422, description = "`validation_failed`: `limit` is not a whole number from 1 to 100 (field `limit`, code `out_of_range`), or `before` is not an event id (field `before`, code `invalid_event_id`).", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "list_events", skip_all, fields(user_id = %caller.user_id))]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, Error> {
    let PageQuery { limit, before } = PageQuery::parse(request.query_string())?;
    let page = events::page(&state.auth.db, caller.user_id, before, limit).await?;
    Ok(private_json(EventPageBody {
        events: page.events.into_iter().map(EventBody::from).collect(),
        next: page.next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(query: &str) -> Vec<&'static str> {
        match PageQuery::parse(query) {
            Err(Error::Validation(errors)) => errors.iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let parsed = PageQuery::parse("").unwrap();
        assert_eq!(
            parsed,
            PageQuery {
                limit: 20,
                before: None
            }
        );
        assert_eq!(PageQuery::parse("limit=1").unwrap().limit, 1);
        assert_eq!(PageQuery::parse("limit=100&other=x").unwrap().limit, 100);
        for bad in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=ten",
            "limit=",
            "limit=1.5",
        ] {
            assert_eq!(fields(bad), ["limit"], "{bad}");
        }
    }

    #[test]
    fn before_is_a_uuid_read_canonically() {
        let id = "0193A0B4-7C2D-7000-8000-000000000001";
        let parsed = PageQuery::parse(&format!("before={id}")).unwrap();
        assert_eq!(parsed.before.as_deref(), Some(id.to_lowercase().as_str()));
        assert_eq!(fields("before=nope&limit=0"), ["limit", "before"]);
        assert_eq!(fields("before="), ["before"]);
    }
}
