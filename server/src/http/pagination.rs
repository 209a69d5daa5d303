//! Cursor pagination for lists: `?limit=` (default 50, at most 200) and an opaque `cursor`
//! that encodes the last id seen (ids are time-ordered, so keyset pagination on id is stable).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size.
pub const MAX_LIMIT: u32 = 200;

/// `?limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items to return.
    pub limit: u32,
    /// The position after which to continue (the list's own key, decoded from the cursor).
    pub after: Option<String>,
}

impl PageParams {
    /// Validates the limit and decodes the cursor.
    pub fn parse(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                ApiError::invalid_field("cursor", "not a cursor returned by this list")
            })?),
        };
        Ok(Page { limit, after })
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    /// The items, in the order the operation describes.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paginated<T> {
    /// Builds a page from up to `limit + 1` rows fetched in list order; the extra row, if any,
    /// only says that another page exists. `key_of` gives the position the next page starts after.
    pub fn from_rows(mut rows: Vec<T>, page: &Page, key_of: impl Fn(&T) -> String) -> Self {
        let has_more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|last| encode_cursor(&key_of(last)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The position of a row in a list ordered by (time, id): used as a cursor key.
pub fn time_key(at: chrono::DateTime<chrono::Utc>, id: &str) -> String {
    format!("{}|{id}", at.timestamp_micros())
}

/// Reads a [`time_key`]; the id must be a UUID.
pub fn parse_time_key(key: &str) -> Option<(chrono::NaiveDateTime, String)> {
    let (micros, id) = key.split_once('|')?;
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros.parse().ok()?)?;
    let id = uuid::Uuid::try_parse(id).ok()?;
    Some((at.naive_utc(), id.hyphenated().to_string()))
}

impl Page {
    /// The cursor position as a [`time_key`], or a 422 naming `cursor`.
    pub fn after_time_key(&self) -> Result<Option<(chrono::NaiveDateTime, String)>, ApiError> {
        self.after
            .as_deref()
            .map(|key| {
                parse_time_key(key).ok_or_else(|| {
                    ApiError::invalid_field("cursor", "not a cursor returned by this list")
                })
            })
            .transpose()
    }
}

fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let key = text.strip_prefix("v1:")?;
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_the_range_are_refused() {
        for limit in [0, 201] {
            let params = PageParams {
                limit: Some(limit),
                cursor: None,
            };
            assert!(params.parse().is_err());
        }
        assert_eq!(PageParams::default().parse().unwrap().limit, 50);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        let cursor = encode_cursor(&id);
        assert_eq!(decode_cursor(&cursor), Some(id));
        assert_eq!(decode_cursor("garbage!"), None);
        assert_eq!(decode_cursor(&encode_cursor("")), None);
    }

    #[test]
    fn a_full_page_carries_a_cursor_and_the_last_page_does_not() {
        let page = Page {
            limit: 2,
            after: None,
        };
        let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let full = Paginated::from_rows(ids.clone(), &page, Clone::clone);
        assert_eq!(full.items.len(), 2);
        assert_eq!(
            decode_cursor(full.next_cursor.as_deref().unwrap()),
            Some(ids[1].clone())
        );
        let last = Paginated::from_rows(ids[..2].to_vec(), &page, Clone::clone);
        assert_eq!(last.next_cursor, None);
    }
}
