//! How generated code finds the JSON Schema of a machine's input and signals: the schema when
//! the type implements `schemars::JsonSchema` and the `schemars` feature is on, `None`
//! otherwise, without a bound the user has to meet.
//!
//! The macro calls `(&Probe::<T>::new()).schema()` on each concrete type, with [`ViaSchema`]
//! and [`NoSchema`] in scope. Method resolution tries [`ViaSchema`] first (its receiver is
//! `&Probe<T>`) and falls back to [`NoSchema`] (one auto-reference further), as
//! [`stored`](crate::stored) does for serde. The choice of feature is made here, where the
//! cfg is visible, rather than in the macro, which cannot see its users' features: without
//! the feature [`ViaSchema`] has no implementation, and every type takes the fallback.

use std::marker::PhantomData;

use serde_json::Value;

/// Selects, for a concrete `T`, its schema or `None`.
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// The probe for `T`; a `const fn` with no bounds, so every type has one.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// The schema of a type that implements `schemars::JsonSchema`, with the `schemars` feature.
pub trait ViaSchema<T> {
    /// `T`'s JSON Schema.
    fn schema(&self) -> Option<Value>;
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> ViaSchema<T> for Probe<T> {
    fn schema(&self) -> Option<Value> {
        // The default settings: JSON Schema 2020-12, describing what deserializes, which is
        // what the engine does with a JSON value.
        Some(schemars::SchemaGenerator::default().into_root_schema_for::<T>().to_value())
    }
}

/// The fallback for every other type: no schema.
pub trait NoSchema<T> {
    /// `None`.
    fn schema(&self) -> Option<Value>;
}

impl<T> NoSchema<T> for &Probe<T> {
    fn schema(&self) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    #[test]
    fn a_type_without_a_schema_has_none() {
        assert_eq!((&Probe::<Opaque>::new()).schema(), None);
    }

    #[cfg(feature = "schemars")]
    #[test]
    // The borrow is the point: it is what generated code writes, whatever the type.
    #[allow(clippy::needless_borrow)]
    fn a_type_with_a_schema_has_it() {
        let schema = (&Probe::<u32>::new()).schema().expect("u32 has a schema");
        assert_eq!(schema["type"], "integer");
    }
}
