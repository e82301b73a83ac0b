//! What ControllerModifyVolume needs from the chart (a volume's snapshot policy changed with
//! `kubectl patch pvc … volumeAttributesClassName`, docs/policies.md): the csi-resizer runs
//! with the VolumeAttributesClass feature on, in a version that speaks the storage/v1 API, and
//! may read the classes and record the change on the PV and the PVC's status.

use super::*;

#[test]
fn the_resizer_is_set_up_for_volume_attributes_classes() {
    for s in scenarios() {
        let r = rendered(s.name);
        let o = typed(s.name, &r.docs);
        let controller = proc(&o, "csi-controller").pod;
        let resizer = container(controller, "csi-resizer");
        let gates = flag(resizer, "--feature-gates").unwrap_or_default();
        assert!(gates.split(',').any(|g| g == "VolumeAttributesClass=true"), "scenario {}: gates {gates:?}", s.name);
        // v2 and later read storage.k8s.io/v1 VolumeAttributesClasses (Kubernetes 1.34+).
        let image = resizer.image.clone().unwrap();
        let major: u32 = image.rsplit_once(":v").and_then(|(_, v)| v.split('.').next()?.parse().ok()).unwrap();
        assert!(major >= 2, "scenario {}: {image}", s.name);

        let sa = controller.service_account_name.clone().unwrap();
        let granted = grants(&o, r.namespace, &sa);
        for (group, resource, verb) in [
            ("storage.k8s.io", "volumeattributesclasses", "get"),
            ("storage.k8s.io", "volumeattributesclasses", "list"),
            ("storage.k8s.io", "volumeattributesclasses", "watch"),
            ("", "persistentvolumes", "patch"),
            ("", "persistentvolumeclaims", "watch"),
            ("", "persistentvolumeclaims/status", "patch"),
        ] {
            let g = ("*".to_string(), group.to_string(), resource.to_string(), verb.to_string(), None);
            assert!(granted.contains(&g), "scenario {}: the resizer may not {verb} {group}/{resource}", s.name);
        }
    }
}
