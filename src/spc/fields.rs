//! The field names an `objects` entry may use, read from the parser's own
//! type, so the list cannot drift from what [`super::parse_objects`] reads
//! (a field added there is known here with no further edit).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::objects::RawObject;

/// The camelCase field names of an `objects` entry, as written in YAML.
pub fn object_fields() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The derived impl hands its field list to `deserialize_struct`, where
    // the recorder keeps it and stops.
    let _ = RawObject::deserialize(FieldRecorder(&mut fields));
    fields
}

/// A deserializer that only records the field list of the struct asked for.
struct FieldRecorder<'a>(&'a mut &'static [&'static str]);

/// The recorder's only answer: it never produces a value.
#[derive(Debug)]
struct Recorded;

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Recorded
    }
}

impl<'de> Deserializer<'de> for FieldRecorder<'_> {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        *self.0 = fields;
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::object_fields;

    #[test]
    fn lists_the_documented_fields_in_yaml_spelling() {
        let fields = object_fields();
        for name in [
            "objectName",
            "secretPath",
            "secretKey",
            "secretArgs",
            "method",
            "encoding",
            "filePermission",
            "cache",
        ] {
            assert!(fields.contains(&name), "{name} missing from {fields:?}");
        }
    }
}
