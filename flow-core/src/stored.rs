//! How generated code stores payloads and signals, so that a type without serde is one error on
//! that type instead of one for every place the state enum (de)serializes it.
//!
//! The macro serializes each payload field through a module it generates (`#[serde(with)]`)
//! whose functions call [`Probe`]'s methods on a concrete type. Method resolution picks
//! [`ViaSerde`] when the type implements `Serialize` and `DeserializeOwned`, and falls back to
//! [`NotSerde`] (one auto-reference further) when it does not, which compiles too (the
//! "autoref specialization" pattern, dtolnay's `case-studies/autoref-specialization`). Only
//! [`check`], spanned on the user's type, fails to compile then, with the message of
//! [`Storable`].

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserializer, Serialize, Serializer};

/// Selects, for a concrete `T`, serde or the stand-in that never runs.
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// The probe for `T`; a `const fn` with no bounds, so every type has one.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// Serde, for a type that has it.
pub trait ViaSerde<T> {
    /// Serializes `value`.
    fn store<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error>;
    /// Deserializes a `T`.
    fn load<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for Probe<T> {
    fn store<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    fn load<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error> {
        // `DeserializeOwned` deserializes from any lifetime.
        T::deserialize(deserializer)
    }
}

/// The stand-in for a type without serde: it compiles so that [`check`] is the only error.
pub trait NotSerde<T> {
    /// Serializes `value`.
    fn store<S: Serializer>(&self, value: &T, serializer: S) -> Result<S::Ok, S::Error>;
    /// Deserializes a `T`.
    fn load<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<T, D::Error>;
}

impl<T> NotSerde<T> for &Probe<T> {
    fn store<S: Serializer>(&self, _: &T, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this type has no serde implementation"))
    }

    fn load<'de, D: Deserializer<'de>>(&self, _: D) -> Result<T, D::Error> {
        Err(serde::de::Error::custom("this type has no serde implementation"))
    }
}

/// A type serde can store. The blanket impl is not recommended in diagnostics, so a type
/// without serde gets this trait's message rather than serde's bound, unexplained.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored: it does not implement serde's `Serialize` and `Deserialize`",
    label = "payloads and signals are stored in every checkpoint",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`; for a type from another crate, enable that crate's `serde` feature or wrap it in a type of yours"
)]
pub trait Storable {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Storable for T {}

/// Fails to compile, with [`Storable`]'s message, when `T` has no serde implementation.
pub fn check<T: Storable>() {}
