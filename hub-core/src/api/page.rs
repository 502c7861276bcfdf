//! Keyset-paginated listings.

use serde::{Deserialize, Serialize};

/// One page of a listing; pass `next` as `?after=` for the following page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Cursor of the next page, absent on the last page.
    pub next: Option<String>,
}

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;
