//! Wire types of the REST API, shared by hubs, `hubctl` and tests, so no hub links another's crate.

pub mod capabilities;
pub mod decisions;
pub mod events;
pub mod manifest;
pub mod page;
pub mod plans;
pub mod registry;
pub mod tokens;

pub use page::Page;

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}
