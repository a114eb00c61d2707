//! A generated tree of 10,000 entity files over 100 applications, for the benches.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// Applications in the tree.
pub const APPS: usize = 100;

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// 100 files per application: Index, 20 services, 10 environments each with an
/// infrastructure definition, 40 workflows and 19 pipelines; plus one cloud provider.
pub fn generate(root: &Path) -> usize {
    let mut count = 1;
    write(
        root,
        "Setup/Cloud Providers/k8s.yaml",
        "harnessApiVersion: '1.0'\ntype: KUBERNETES_CLUSTER\nmasterUrl: https://k8s.example.com\nskipValidation: true\n",
    );
    for a in 0..APPS {
        let app = format!("Setup/Applications/app-{a:03}");
        write(
            root,
            &format!("{app}/Index.yaml"),
            "harnessApiVersion: '1.0'\ntype: APPLICATION\ndescription: generated\n",
        );
        count += 1;
        for s in 0..20 {
            write(
                root,
                &format!("{app}/Services/svc-{s}/Index.yaml"),
                "harnessApiVersion: '1.0'\ntype: SERVICE\nartifactType: DOCKER\ndeploymentType: KUBERNETES\nhelmVersion: V2\n",
            );
            count += 1;
        }
        for e in 0..10 {
            write(
                root,
                &format!("{app}/Environments/env-{e}/Index.yaml"),
                "harnessApiVersion: '1.0'\ntype: ENVIRONMENT\nenvironmentType: NON_PROD\n",
            );
            write(
                root,
                &format!("{app}/Environments/env-{e}/Infrastructure Definitions/k8s-{e}.yaml"),
                "harnessApiVersion: '1.0'\ntype: INFRA_DEFINITION\ncloudProviderType: KUBERNETES_CLUSTER\ndeploymentType: KUBERNETES\ninfrastructure:\n- type: DIRECT_KUBERNETES\n  cloudProviderName: k8s\n  namespace: default\n  releaseName: release-${infra.kubernetes.infraId}\n",
            );
            count += 2;
        }
        for w in 0..40 {
            let (s, e) = (w % 20, w % 10);
            write(
                root,
                &format!("{app}/Workflows/wf-{w}.yaml"),
                &format!(
                    "harnessApiVersion: '1.0'\ntype: CANARY\nenvName: env-{e}\nphases:\n- type: KUBERNETES\n  computeProviderName: k8s\n  daemonSet: false\n  infraDefinitionName: k8s-{e}\n  name: Canary\n  phaseSteps:\n  - type: K8S_PHASE_STEP\n    name: Deploy\n    steps:\n    - type: K8S_CANARY_DEPLOY\n      name: Canary Deployment\n      properties:\n        instances: '1'\n        instanceUnitType: COUNT\n    stepsInParallel: false\n  provisionNodes: false\n  serviceName: svc-{s}\n  statefulSet: false\ntemplatized: false\n"
                ),
            );
            count += 1;
        }
        for p in 0..19 {
            write(
                root,
                &format!("{app}/Pipelines/pl-{p}.yaml"),
                &format!(
                    "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  name: STAGE 1\n  parallel: false\n  skipCondition:\n    type: DO_NOT_SKIP\n  stageName: STAGE 1\n  workflowName: wf-{}\n- type: ENV_STATE\n  name: STAGE 2\n  parallel: false\n  skipCondition:\n    type: DO_NOT_SKIP\n  stageName: STAGE 2\n  workflowName: wf-{}\n",
                    p,
                    p + 20
                ),
            );
            count += 1;
        }
    }
    count
}
