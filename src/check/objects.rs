//! The `objects` parameter read loosely, as YAML values, so rules can look
//! at fields the parser ignores (misspelt ones) and at how numbers were
//! written.  What the provider does with it is decided by
//! [`crate::spc::parse_objects`] alone.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::spc::MAX_OBJECTS_YAML_BYTES;

/// The `objects` parameter of one SPC.
#[derive(Debug)]
pub enum ObjectList {
    /// No `objects` parameter.
    Missing,
    /// Not a YAML list (the parser reports why).
    Invalid,
    /// The entries in order.
    Entries(Vec<ObjectEntry>),
}

/// One entry of `objects`.
#[derive(Debug)]
pub struct ObjectEntry {
    /// 1-based position in the list.
    pub index: usize,
    /// `objectName` as text (empty when missing or not a string).
    pub name: String,
    /// The fields, or `None` when the entry is not a mapping.
    pub fields: Option<Map<String, Value>>,
    /// `filePermission` exactly as written (`0600`, `384`, `0o600`), when
    /// it is a plain scalar: YAML numbers lose how they were written.
    pub permission_literal: Option<String>,
}

impl ObjectEntry {
    /// The objectName, or `#N` for an entry without one.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("#{}", self.index)
        } else {
            self.name.clone()
        }
    }

    /// A string field.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.as_ref()?.get(field)?.as_str()
    }
}

/// The one field whose spelling as written matters.
#[derive(Deserialize)]
struct Literal {
    /// `filePermission` as text.
    #[serde(rename = "filePermission")]
    file_permission: Option<String>,
}

impl ObjectList {
    /// Reads `objects` (the SPC parameter's text).
    pub fn read(text: Option<&str>) -> Self {
        let Some(text) = text else {
            return ObjectList::Missing;
        };
        if text.len() > MAX_OBJECTS_YAML_BYTES {
            // The parser refuses it by size; reading it loosely gains nothing.
            return ObjectList::Invalid;
        }
        // Same number rules as the parser: 0600 is octal.
        let options = serde_saphyr::options! { legacy_octal_numbers: true };
        let values: Option<Vec<Value>> = match serde_saphyr::from_str_with_options(text, options) {
            Ok(values) => values,
            Err(_) => return ObjectList::Invalid,
        };
        let literals: Vec<Option<String>> = serde_saphyr::from_str::<Option<Vec<Literal>>>(text)
            .ok()
            .flatten()
            .map(|l| l.into_iter().map(|l| l.file_permission).collect())
            .unwrap_or_default();
        let entries = values
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let fields = match value {
                    Value::Object(map) => Some(map),
                    _ => None,
                };
                ObjectEntry {
                    index: i + 1,
                    name: fields
                        .as_ref()
                        .and_then(|f| f.get("objectName"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    fields,
                    permission_literal: literals.get(i).cloned().flatten(),
                }
            })
            .collect();
        ObjectList::Entries(entries)
    }

    /// The entries (none when missing or invalid).
    pub fn entries(&self) -> &[ObjectEntry] {
        match self {
            ObjectList::Entries(entries) => entries,
            ObjectList::Missing | ObjectList::Invalid => &[],
        }
    }

    /// objectNames given to more than one entry.
    pub fn duplicates(&self) -> Vec<&str> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in self.entries() {
            if !entry.name.is_empty() {
                *counts.entry(entry.name.as_str()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(name, _)| name)
            .collect()
    }
}
