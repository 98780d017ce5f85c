//! `?kinds=` of every run's streams: [`Kinds`], the kinds of events a follower wants.
//!
//! A follower that wants less costs the engine's cores less: the hub makes JSON only of the
//! events some follower wants. The dashboard's runs table, which reads the runs afresh when
//! one moves, follows the kinds that move a run, not each attempt, checkpoint and line of
//! progress.

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use flow_core::EventKind;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::error::ApiError;

/// `?kinds=` of every run's streams.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KindsQuery {
    /// The kinds of events to send, by name, comma-separated (`Started,Transitioned,Completed`:
    /// the names `kind` has in an event's JSON); every kind when absent or empty. An unknown
    /// name: 400, naming the known ones.
    kinds: Option<String>,
}

/// The kinds of events a follower wants: one bit per [`EventKind::NAMES`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Kinds(u32);

impl Kinds {
    /// Every kind.
    pub(crate) const ALL: Kinds = Kinds(u32::MAX);

    /// The names of the kinds wanted; none for every kind.
    pub(crate) fn names(self) -> Vec<&'static str> {
        if self == Kinds::ALL {
            return Vec::new();
        }
        let wanted =
            EventKind::NAMES.iter().enumerate().filter(|(index, _)| self.0 & (1 << index) != 0);
        wanted.map(|(_, name)| *name).collect()
    }

    /// Whether an event of `kind` is wanted.
    pub(crate) fn wants(self, kind: &EventKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// The kinds named in `text`, comma-separated; all for none.
    fn parse(text: &str) -> Result<Kinds, String> {
        let mut kinds = 0;
        for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let Some(index) = EventKind::NAMES.iter().position(|known| *known == name) else {
                return Err(name.to_owned());
            };
            kinds |= 1 << index;
        }
        Ok(if kinds == 0 { Kinds::ALL } else { Kinds(kinds) })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Kinds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Kinds, ApiError> {
        let Query(query) = Query::<KindsQuery>::try_from_uri(&parts.uri).map_err(|rejection| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text())
        })?;
        Kinds::parse(query.kinds.as_deref().unwrap_or("")).map_err(|name| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!(
                    "`{name}` is no kind of event; kinds takes these, comma-separated: {}",
                    EventKind::NAMES.join(", ")
                ),
            )
            .detail(json!({ "parameter": "kinds" }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_by_name_and_none_means_all() {
        let kinds = Kinds::parse("Started, Completed").unwrap();
        assert!(kinds.wants(&EventKind::Started));
        assert!(kinds.wants(&EventKind::Completed { output: serde_json::Value::Null }));
        assert!(!kinds.wants(&EventKind::Checkpointed { seq: 1 }));
        assert_eq!(kinds.names(), ["Started", "Completed"]);
        assert_eq!(Kinds::parse(""), Ok(Kinds::ALL));
        assert!(Kinds::ALL.names().is_empty());
        assert_eq!(Kinds::parse("Started,Finished"), Err("Finished".to_owned()));
    }
}
