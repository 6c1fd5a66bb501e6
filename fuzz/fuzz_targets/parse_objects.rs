//! The `objects` YAML of a SecretProviderClass: any bytes must parse or be
//! rejected with a bounded InvalidArgument message, never panic or run away.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vault_csi::fuzzing::parse_objects(data));
