//! Prints the configuration-as-code speed figures of issue #3; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench tree`.
//!
//! A generated tree of 10,000 entity files over 100 applications is imported through the CLI
//! and the API, imported again (nothing changes), exported, checked with `fmt --check`, and
//! backed up while the server runs.
//! The server's peak resident memory (VmHWM) is read at the end.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::TestApp;

const APPS: usize = 100;

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// 100 files per application: Index, 20 services, 10 environments each with an
/// infrastructure definition, 40 workflows and 19 pipelines; plus one cloud provider.
fn generate(root: &Path) -> usize {
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

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("tree");
    let files = generate(&source);
    let source_arg = source.to_str().unwrap();

    let rate = |label: &str, seconds: f64| {
        println!(
            "{label:<36} {files} files in {:>6.2} s = {:>8.0} files/s",
            seconds,
            files as f64 / seconds
        );
    };
    let started = Instant::now();
    app.cli(&["fmt", "--check", source_arg], None).ok();
    rate("fmt --check (offline)", started.elapsed().as_secs_f64());

    let started = Instant::now();
    app.cli(&["import", source_arg], None).ok();
    rate(
        "import (CLI -> API -> SQLite)",
        started.elapsed().as_secs_f64(),
    );

    let started = Instant::now();
    let again = app.cli(&["import", source_arg], None);
    assert!(again.ok().stderr.starts_with("nothing to change"));
    rate(
        "second import (nothing changes)",
        started.elapsed().as_secs_f64(),
    );

    // The API's answer alone, without writing files: the figure the server is responsible
    // for, which a slow or shared disk does not blur.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reposync_api::Client::new(&app.url, Some(app.token.clone())).unwrap();
    let started = Instant::now();
    let answer = runtime
        .block_on(client.get(&["export"], &[], std::time::Duration::from_secs(120)))
        .unwrap();
    rate("export (API answer only)", started.elapsed().as_secs_f64());
    assert_eq!(answer["files"].as_array().unwrap().len(), files);

    let out = app.dir.path().join("exported");
    let started = Instant::now();
    app.cli(&["export", out.to_str().unwrap()], None).ok();
    rate(
        "export (API -> CLI -> files)",
        started.elapsed().as_secs_f64(),
    );

    // A backup of the 10,000-entity store while the server runs (issue 13).
    let backup = app.dir.path().join("store.backup");
    let started = Instant::now();
    app.cli(
        &[
            "--data-dir",
            app.data_dir().to_str().unwrap(),
            "backup",
            "--out",
            backup.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    println!(
        "{:<36} {files} files in {:>6.2} s ({:.1} MiB)",
        "backup (VACUUM INTO, server running)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&backup).unwrap().len() as f64 / (1024.0 * 1024.0)
    );

    println!(
        "{:<36} {:.1} MiB",
        "server peak resident memory (VmHWM)",
        vm_hwm_kib(app.pid()) as f64 / 1024.0
    );
}
