//! The raw layer of a lab file: what the TOML says, with the position of every value a human
//! types, before any of it is checked. Dependencies are one flat struct whose `kind` decides
//! which keys are allowed, rather than a tagged enum: serde buffers tagged enums, which loses
//! the positions, and a flat struct lets the error say "`upstream` is for tcp and http".

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::load::Param;

pub type Str = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLabFile {
    pub service: Spanned<RawService>,
    #[serde(default)]
    pub deps: BTreeMap<Str, Spanned<RawDep>>,
    #[serde(default)]
    pub expect: RawExpect,
    #[serde(default)]
    pub alerts: Option<Str>,
    #[serde(default)]
    pub openapi: Option<Str>,
    #[serde(default)]
    pub load: Option<RawLoad>,
    #[serde(default)]
    pub request: Vec<Spanned<RawRequest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    #[serde(default)]
    pub command: Option<Spanned<Vec<Str>>>,
    #[serde(default)]
    pub url: Option<Str>,
    #[serde(default)]
    pub image: Option<Str>,
    #[serde(default)]
    pub build: Option<Str>,
    #[serde(default)]
    pub compose: Option<Str>,
    #[serde(default)]
    pub compose_service: Option<Str>,
    #[serde(default)]
    pub container_port: Option<Spanned<u16>>,
    #[serde(default)]
    pub cwd: Option<Str>,
    #[serde(default)]
    pub env: BTreeMap<Str, Str>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub listeners: Vec<Str>,
    #[serde(default)]
    pub ready: Option<Str>,
    #[serde(default)]
    pub ready_within: Option<Str>,
    #[serde(default)]
    pub readiness: Option<Str>,
    #[serde(default)]
    pub liveness: Option<Str>,
    #[serde(default)]
    pub metrics: Option<Str>,
    #[serde(default)]
    pub stop_signal: Option<Str>,
    #[serde(default)]
    pub stop_grace: Option<Str>,
    #[serde(default)]
    pub user: Option<Str>,
    #[serde(default)]
    pub logs: Option<Spanned<RawLogs>>,
    #[serde(default)]
    pub config: BTreeMap<Str, Spanned<RawConfig>>,
    #[serde(default)]
    pub failpoints: Option<Spanned<RawFailpoints>>,
    #[serde(default)]
    pub protections: Option<Spanned<RawProtections>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtections {
    pub names: Vec<Str>,
    #[serde(default)]
    pub on: Vec<Str>,
    pub off: Spanned<Vec<Str>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub format: Str,
    #[serde(default)]
    pub request_id_header: Option<Str>,
    #[serde(default)]
    pub request_id_field: Option<Str>,
    #[serde(default)]
    pub message_field: Option<Str>,
    #[serde(default)]
    pub level_field: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub template: Option<Str>,
    #[serde(default)]
    pub text: Option<Str>,
    #[serde(default)]
    pub file: Option<Str>,
    #[serde(default)]
    pub reload: Option<Spanned<RawReload>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    #[serde(default)]
    pub signal: Option<Str>,
    pub failures: Str,
    pub successes: Str,
    #[serde(default)]
    pub last_ok: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailpoints {
    pub url: Str,
    #[serde(default)]
    pub token: Option<Str>,
    #[serde(default)]
    pub names: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDep {
    pub kind: Str,
    // postgres
    #[serde(default)]
    pub database: Option<Str>,
    #[serde(default)]
    pub setup_sql: Option<Spanned<Vec<Str>>>,
    #[serde(default)]
    pub setup_command: Option<Spanned<Vec<Str>>>,
    #[serde(default)]
    pub setup_env: BTreeMap<Str, Str>,
    // tcp, http
    #[serde(default)]
    pub upstream: Option<Str>,
    // http
    #[serde(default)]
    pub answer: Option<Spanned<Vec<Spanned<RawAnswer>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswer {
    pub request: Str,
    #[serde(default)]
    pub status: Option<Spanned<u16>>,
    #[serde(default)]
    pub headers: BTreeMap<Str, Str>,
    #[serde(default)]
    pub body: Option<Str>,
    #[serde(default)]
    pub delay: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    #[serde(default)]
    pub errors: Option<Str>,
    #[serde(default)]
    pub error_fields: Vec<Str>,
    #[serde(default)]
    pub retry_after: Option<bool>,
    #[serde(default)]
    pub leak_patterns: Vec<Str>,
    #[serde(default)]
    pub stale_routes: Vec<Str>,
    #[serde(default)]
    pub stale_header: Option<Str>,
    #[serde(default)]
    pub stored: Option<Spanned<RawStored>>,
    #[serde(default)]
    pub invariants: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStored {
    pub request: Str,
    #[serde(default)]
    pub id: Option<Str>,
    pub table: Str,
    #[serde(default)]
    pub column: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub timeout: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[serde(default)]
    pub method: Option<Str>,
    pub path: Str,
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
    #[serde(default)]
    pub headers: BTreeMap<Str, Str>,
    #[serde(default)]
    pub body: Option<Str>,
    #[serde(default)]
    pub params: BTreeMap<Str, Spanned<Param>>,
    #[serde(default)]
    pub capture: BTreeMap<Str, Str>,
    #[serde(default)]
    pub idempotency_key: Option<bool>,
}
