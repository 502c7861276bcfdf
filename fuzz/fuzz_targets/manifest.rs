//! Manifest JSON → parse → validate never panics; a manifest that validates survives a
//! serialise/parse round trip unchanged and still validates.
#![no_main]

use hub_core::api::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    let problems = manifest.validate();
    for p in &problems {
        // Every problem names its field, so a hub author can find it.
        assert!(!p.field.is_empty(), "a problem without a field: {p:?}");
        assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
    }
    if !problems.is_empty() {
        return;
    }
    let bytes = serde_json::to_vec(&manifest).expect("a parsed manifest serialises");
    let again: Manifest = serde_json::from_slice(&bytes).expect("a serialised manifest parses");
    assert_eq!(again, manifest, "round trip changed the manifest");
    assert!(
        again.validate().is_empty(),
        "round trip made a valid manifest invalid"
    );
    let pretty = serde_json::to_string_pretty(&manifest).expect("serialises");
    let third: Manifest = serde_json::from_str(&pretty).expect("pretty form parses");
    assert_eq!(third, manifest, "pretty round trip changed the manifest");
});
