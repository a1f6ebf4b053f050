//! The OpenAPI 3.1 description of every route, served at `/api/openapi.json`.

use serde_json::{json, Value};

use super::api::{ENTERPRISE_PREFIX, PREFIX};

fn list_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "required": false, "description": description,
        "style": "form", "explode": true,
        "schema": {"type": "array", "items": {"type": "string"}}
    })
}

fn str_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

/// Filter parameters shared by the query, filterdata and export routes.
fn filter_params() -> Vec<Value> {
    vec![
        list_param("event_type", "Event types (OR-ed; also comma-separated)."),
        list_param("action", "Actions."),
        list_param("status", "Statuses."),
        json!({"name": "severity", "in": "query", "required": false, "style": "form",
               "explode": true, "description": "Severities.",
               "schema": {"type": "array", "items": {"type": "string",
                          "enum": ["info", "low", "medium", "high", "critical"]}}}),
        list_param("user_id", "Actor user ids."),
        list_param("email", "Actor emails (case-insensitive)."),
        list_param("ip", "Actor addresses or CIDR ranges (IPv4 or IPv6)."),
        list_param("resource_type", "Resource types."),
        list_param("resource_id", "Resource ids."),
        str_param(
            "start_date",
            "Inclusive start: RFC 3339 or YYYY-MM-DD (a whole UTC day).",
            json!({"type": "string"}),
        ),
        str_param(
            "end_date",
            "Inclusive end: RFC 3339 or YYYY-MM-DD (a whole UTC day).",
            json!({"type": "string"}),
        ),
    ]
}

fn paging_params() -> Vec<Value> {
    vec![
        str_param(
            "limit",
            "Events per page (1 to 10000, default 100).",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
        str_param(
            "page",
            "A 1-based page number, or the cursor of a next_page link.",
            json!({"type": "string"}),
        ),
        str_param(
            "cursor",
            "The cursor of the previous page's next_page.",
            json!({"type": "string"}),
        ),
        str_param(
            "order",
            "By timestamp, ties by seq.",
            json!({"type": "string", "enum": ["asc", "desc"]}),
        ),
        str_param(
            "include_details",
            "Whether events carry details (default true).",
            json!({"type": "boolean"}),
        ),
    ]
}

fn err(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn with_errors(mut responses: Value, codes: &[(&str, &str)]) -> Value {
    let m = responses.as_object_mut().expect("responses object");
    for (code, d) in [
        ("401", "Missing or unknown bearer token."),
        ("403", "The token lacks the route's role."),
        (
            "429",
            "The address is locked out after failed authentications.",
        ),
    ]
    .iter()
    .chain(codes)
    {
        m.insert(code.to_string(), err(d));
    }
    responses
}

/// The seed's report request (`POST …/reports`).
fn report_request_schema() -> Value {
    json!({"type": "object", "required": ["report_type", "date_range"], "additionalProperties": false,
        "properties": {
            "report_type": {"type": "string", "enum": ["access_audit", "change_audit", "security_audit", "compliance_audit", "user_activity"]},
            "compliance_framework": {"type": ["string", "null"], "enum": ["soc2_type2", "iso27001", "gdpr", "hipaa", null],
                "description": "Required for compliance_audit."},
            "date_range": {"type": "object", "required": ["start_date", "end_date"], "additionalProperties": false,
                "properties": {
                    "start_date": {"type": "string", "description": "Inclusive: RFC 3339 or YYYY-MM-DD."},
                    "end_date": {"type": "string", "description": "Inclusive: RFC 3339 or YYYY-MM-DD (a whole UTC day)."}}},
            "include_sections": {"type": "array", "minItems": 1, "items": {"type": "string",
                "enum": ["authentication_events", "authorization_events", "configuration_changes", "security_incidents", "data_access"]}},
            "format": {"type": "string", "enum": ["json", "html", "csv", "pdf"], "description": "Default json; pdf needs the `pdf` feature (a default), else 400."},
            "include_evidence": {"type": "boolean"},
            "user_id": {"type": "string", "description": "Required for user_activity, refused otherwise."}}})
}

fn operation(id: &str, summary: &str, role: &str, params: Vec<Value>, responses: Value) -> Value {
    json!({
        "operationId": id,
        "summary": summary,
        "description": format!("Needs a token with the `{role}` role (or `admin`)."),
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses,
    })
}

/// The ingest answer, with OpenAPI links from its first receipt to the event routes (so that
/// stateful API testers follow real event ids rather than guessing them).
fn receipts_with_links(tag: &str) -> Value {
    let mut r = ok(
        "Receipts of the appended events.",
        json!({"$ref": "#/components/schemas/Ingested"}),
    );
    r["links"] = json!({
        "GetEvent": {"operationId": format!("{tag}event"),
            "parameters": {"event_id": "$response.body#/receipts/0/event_id"}},
        "VerifyEvent": {"operationId": format!("{tag}event_verify"),
            "parameters": {"event_id": "$response.body#/receipts/0/event_id"}},
        "ProveEvent": {"operationId": format!("{tag}event_proof"),
            "parameters": {"event_id": "$response.body#/receipts/0/event_id"}},
    });
    r
}

/// The document./// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (p, tag) in [(PREFIX, ""), (ENTERPRISE_PREFIX, "enterprise_")] {
        let mut query_params = filter_params();
        query_params.extend(paging_params());
        paths.insert(
            p.to_string(),
            json!({
                "get": operation(&format!("{tag}query"), "Query events (the seed's GET parameters)", "read",
                    query_params,
                    with_errors(json!({"200": ok("A page in the seed's shape.", json!({"$ref": "#/components/schemas/Page"}))}),
                        &[("400", "A bad parameter, named in error.param.")])),
                "post": {
                    "operationId": format!("{tag}ingest"),
                    "summary": "Append events: one JSON object, an array of them, or NDJSON",
                    "description": "Needs the `ingest` role. Receipts are returned once the events are durable. A bad line is a 400 naming it; the lines before it are kept and their receipts are in the error body.",
                    "security": [{"bearer": []}],
                    "requestBody": {"required": true, "content": {
                        "application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/EventIn"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}}]}},
                        "application/x-ndjson": {"schema": {"type": "string"}}}},
                    "responses": with_errors(json!({"200": receipts_with_links(tag)}),
                        &[("400", "A malformed or invalid event, named by line."),
                          ("413", "An event over max_event_bytes, or a body over max_body_bytes."),
                          ("503", "Audit logging is disabled or the log cannot accept writes."),
                          ("507", "The disk is full.")]),
                }
            }),
        );
        paths.insert(format!("{p}/query"), json!({"post": {
            "operationId": format!("{tag}query_post"),
            "summary": "Query events with the seed's body",
            "description": "Needs the `read` role. Unknown fields are refused by name.",
            "security": [{"bearer": []}],
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryBody"}}}},
            "responses": with_errors(json!({"200": ok("A page in the seed's shape.", json!({"$ref": "#/components/schemas/Page"}))}),
                &[("400", "An unknown field or a bad value, named in error.param.")]),
        }}));
        let mut fd = filter_params();
        fd.push(json!({"name": "dimensions", "in": "query", "required": false, "style": "form", "explode": false,
            "description": "Fields to count (default all).",
            "schema": {"type": "array", "items": {"type": "string", "enum": crate::FACET_DIMENSIONS}}}));
        fd.push(str_param(
            "values_limit",
            "Values per dimension (1 to 10000, default 100).",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ));
        paths.insert(format!("{p}/filterdata"), json!({"get": operation(&format!("{tag}filterdata"),
            "Distinct values of fields, with counts", "read", fd,
            with_errors(json!({"200": ok("Per dimension: distinct count and the most frequent values.", json!({"$ref": "#/components/schemas/FilterData"}))}),
                &[("400", "A bad parameter.")]))}));
        let mut ex = filter_params();
        ex.push(str_param(
            "format",
            "jsonl (default), csv, or a SIEM format: ocsf, cef, syslog, hec, elastic.",
            json!({"type": "string", "enum": crate::ExportFormat::ALL.map(|f| f.name())}),
        ));
        ex.push(str_param(
            "order",
            "asc (log order, default) or desc.",
            json!({"type": "string", "enum": ["asc", "desc"]}),
        ));
        ex.push(str_param(
            "include_details",
            "Whether events carry details.",
            json!({"type": "boolean"}),
        ));
        paths.insert(
            format!("{p}/export"),
            json!({"get": operation(&format!("{tag}export"),
            "Stream every matching event", "export", ex,
            with_errors(json!({"200": {"description": "The events, streamed.", "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}}}}}), &[("400", "A bad parameter.")]))}),
        );
        paths.insert(format!("{p}/verify"), json!({
            "get": operation(&format!("{tag}verify"), "Verify every record, the chain and the checkpoints", "read",
                vec![str_param("skip_indexes", "Do not authenticate index side files.", json!({"type": "boolean"}))],
                with_errors(json!({"200": ok("The verification report.", json!({"$ref": "#/components/schemas/VerifyReport"}))}), &[("400", "A bad parameter.")])),
            "post": {
                "operationId": format!("{tag}verify_against"),
                "summary": "Verify against externally kept checkpoints",
                "description": "Needs the `read` role.",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/Checkpoint"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/Checkpoint"}}]}}}},
                "responses": with_errors(json!({"200": ok("The verification report.", json!({"$ref": "#/components/schemas/VerifyReport"}))}), &[("400", "Not a checkpoint.")]),
            }
        }));
        paths.insert(format!("{p}/checkpoint"), json!({"get": operation(&format!("{tag}checkpoint"),
            "Sign a checkpoint of the latest record, for keeping elsewhere", "read", vec![],
            with_errors(json!({"200": ok("The signed checkpoint.", json!({"$ref": "#/components/schemas/Checkpoint"}))}),
                &[("409", "The log is empty.")]))}));
        paths.insert(format!("{p}/audit-hash"), json!({"post": {
            "operationId": format!("{tag}audit_hash"),
            "summary": "The hmac-sha256 value ingest stores for a hashed details field",
            "description": "Needs the `read` role.",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["value"], "additionalProperties": false,
                "properties": {"value": {"type": "string"}}}}}},
            "responses": with_errors(json!({"200": ok("The hash.", json!({"type": "object", "required": ["hash"], "properties": {"hash": {"type": "string"}}}))}),
                &[("400", "A bad body."), ("409", "No field_hmac_key is configured.")]),
        }}));
        paths.insert(format!("{p}/reports"), json!({"post": {
            "operationId": format!("{tag}report"),
            "summary": "Generate a compliance report over a date range (see docs/REPORTS.md)",
            "description": "Needs the `read` or the `export` role. Recorded as a `data_access` event with the report's SHA-256.",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": report_request_schema()}}},
            "responses": with_errors(json!({"200": {"description": "The report in the requested format, sealed with its SHA-256 and an HMAC under the log's key.",
                "content": {
                    "application/json": {"schema": {"type": "object",
                        "required": ["report_version", "request", "summary", "sections", "evidence", "integrity"]}},
                    "text/html": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}),
                &[("400", "A bad field (named in `error.param`), or format pdf in a build without the `pdf` feature.")]),
        }}));
        paths.insert(format!("{p}/verify/run"), json!({"post": operation(&format!("{tag}verify_run"),
            "Verify the whole log now; the result becomes the server's last verification", "admin", vec![],
            with_errors(json!({"200": ok("The verification report.", json!({"$ref": "#/components/schemas/VerifyReport"}))}),
                &[("400", "A bad parameter.")]))}));
        paths.insert(format!("{p}/status"), json!({"get": operation(&format!("{tag}status"),
            "What the console's status bar shows: size, last verification, last checkpoint, retention", "read", vec![],
            with_errors(json!({"200": ok("The log's status.", json!({"type": "object",
                "required": ["events", "segments", "bytes", "last_verify", "last_checkpoint", "retention"],
                "properties": {
                    "events": {"type": "integer"}, "first_seq": {"type": ["integer", "null"]},
                    "last_seq": {"type": ["integer", "null"]}, "durable_seq": {"type": ["integer", "null"]},
                    "segments": {"type": "integer"}, "bytes": {"type": "integer"},
                    "data_bytes": {"type": "integer"}, "read_only": {"type": "boolean"},
                    "last_verify": {"type": ["object", "null"]}, "last_checkpoint": {"type": ["object", "null"]},
                    "retention": {"type": "object"}, "sinks": {"type": ["object", "null"]}}}))}),
                &[("400", "A parameter was given (status takes none).")]))}));
        paths.insert(format!("{p}/tail"), json!({"get": operation(&format!("{tag}tail"),
            "Follow the log: every record after after_seq as server-sent events (event `audit`, id = seq)", "read",
            vec![json!({"name": "after_seq", "in": "query", "required": false,
                "description": "Send records after this seq (default: only records appended from now on). The Last-Event-ID header overrides it.",
                "schema": {"type": "integer", "minimum": 0}})],
            with_errors(json!({"200": {"description": "An endless text/event-stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}}),
                &[("400", "A bad parameter.")]))}));
        let id_param = json!({"name": "event_id", "in": "path", "required": true, "schema": {"type": "string"}});
        paths.insert(format!("{p}/{{event_id}}"), json!({"get": operation(&format!("{tag}event"),
            "One event by its event_id, its MAC rechecked", "read", vec![id_param.clone()],
            with_errors(json!({"200": ok("The event.", json!({"$ref": "#/components/schemas/Event"}))}),
                &[("400", "The event_id is not valid UTF-8 once percent-decoded."), ("404", "No such event.")]))}));
        paths.insert(
            format!("{p}/{{event_id}}/verify"),
            json!({"get": operation(&format!("{tag}event_verify"),
            "Recompute one event's MAC", "read", vec![id_param],
            with_errors(json!({"200": ok("Whether the record verifies.", json!({"type": "object",
                "required": ["valid", "hash", "seq", "event_id"],
                "properties": {"valid": {"type": "boolean"}, "hash": {"type": "string"},
                               "seq": {"type": "integer"}, "event_id": {"type": "string"}}}))}),
                &[("400", "The event_id is not valid UTF-8 once percent-decoded."), ("404", "No such event.")]))}),
        );
        paths.insert(
            format!("{p}/{{event_id}}/proof"),
            json!({"get": operation(&format!("{tag}event_proof"),
            "The event's RFC 9162 Merkle inclusion proof", "read",
            vec![json!({"name": "event_id", "in": "path", "required": true, "schema": {"type": "string"}}),
                 json!({"name": "tree_size", "in": "query", "required": false,
                    "description": "Prove against the tree of this many leaves (greater than the event's seq, at most the current size); default: the current tree, signed first when the server has a checkpoint signing key.",
                    "schema": {"type": "integer", "minimum": 1}})],
            with_errors(json!({"200": ok("The proof (docs/TRANSPARENCY.md); `auditlog verify-proof` checks it with the verifier key.",
                json!({"$ref": "#/components/schemas/InclusionProof"}))}),
                &[("400", "A bad event_id or tree_size, named in error.param."), ("404", "No such event.")]))}),
        );
        paths.insert(
            format!("{p}/checkpoint/witness"),
            json!({"post": operation(&format!("{tag}checkpoint_witness"),
            "Sign the current tree and ask server.witnesses to cosign it (C2SP tlog-witness)", "admin",
            vec![],
            with_errors(json!({"200": ok("The kept checkpoint (with the cosignatures that verified) and one outcome per witness.",
                json!({"type": "object", "required": ["checkpoint", "witnesses", "cosignatures", "quorum", "quorum_met"],
                    "properties": {"checkpoint": {"type": "string"},
                        "witnesses": {"type": "array", "items": {"type": "object", "required": ["witness"],
                            "properties": {"witness": {"type": "string"}, "cosigned_at": {"type": "integer"}, "error": {"type": "string"}}}},
                        "cosignatures": {"type": "integer"}, "quorum": {"type": "integer"}, "quorum_met": {"type": "boolean"}}}))}),
                &[("400", "A parameter was given (it takes none)."), ("409", "No signing key or no witnesses configured.")]))}),
        );
        paths.insert(
            format!("{p}/consistency"),
            json!({"get": operation(&format!("{tag}consistency"),
            "RFC 9162 consistency proof between two tree sizes", "read",
            vec![json!({"name": "old", "in": "query", "required": true,
                    "description": "The old tree size (at least 1, at most new).",
                    "schema": {"type": "integer", "minimum": 1}}),
                 json!({"name": "new", "in": "query", "required": false,
                    "description": "The new tree size (at most the current size); default: the current tree, signed first when the server has a checkpoint signing key (its checkpoint is then attached).",
                    "schema": {"type": "integer", "minimum": 1}})],
            with_errors(json!({"200": ok("The proof (docs/TRANSPARENCY.md); `auditlog verify-proof` checks it with the verifier key when it carries a checkpoint.",
                json!({"$ref": "#/components/schemas/ConsistencyProof"}))}),
                &[("400", "A bad, missing or out-of-range old or new, named in error.param."),
                  ("410", "Retention pruned the leaf hashes the proof needs (code pruned_by_retention; the message names the seq and the tree's minimum index).")]))}),
        );
    }
    paths.insert(
        "/health".into(),
        json!({"get": {
        "operationId": "health", "summary": "Liveness (no authentication)", "security": [],
        "responses": {"200": ok("Alive.", json!({"type": "object", "required": ["status"],
            "properties": {"status": {"type": "string"}, "next_seq": {"type": "integer"}}}))}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": operation("metrics", "Prometheus metrics", "read", vec![],
        with_errors(json!({"200": {"description": "Text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}), &[]))}),
    );
    paths.insert(
        "/api/openapi.json".into(),
        json!({"get": operation("openapi", "This document", "read", vec![],
        with_errors(json!({"200": ok("OpenAPI 3.1.", json!({"type": "object"}))}), &[]))}),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "auditlog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tamper-evident audit log storage: the Bifrost audit-logs API over a hash-chained, HMAC-signed log. Every read, query, verification and export is itself recorded as a data_access event.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

fn schemas() -> Value {
    let strs = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "param": {"type": "string"}}}}},
        "Actor": {"type": "object", "properties": {
            "user_id": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]},
            "ip_address": {"type": ["string", "null"]}}},
        "Resource": {"type": ["object", "null"], "properties": {"type": {"type": "string"}, "id": {"type": ["string", "null"]}}},
        "EventIn": {"type": "object", "required": ["event_type", "action"], "properties": {
            "event_id": {"type": "string", "minLength": 1, "maxLength": 128,
                         "description": "1 to 128 bytes of UTF-8; default: evt_<seq>."},
            "timestamp": {"type": "string", "format": "date-time",
                          "description": "RFC 3339, years 1678 to 2261 (nanoseconds in an i64); default: now."},
            "event_type": {"type": "string", "minLength": 1}, "action": {"type": "string", "minLength": 1},
            "status": {"type": "string", "minLength": 1},
            "severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]},
            "actor": {"$ref": "#/components/schemas/Actor"},
            "resource": {"$ref": "#/components/schemas/Resource"},
            "details": {"type": ["object", "null"]}}},
        "Event": {"type": "object", "required": ["event_id", "timestamp", "event_type", "action", "seq", "verification"], "properties": {
            "event_id": {"type": "string"}, "timestamp": {"type": "string"},
            "event_type": {"type": "string"}, "action": {"type": "string"},
            "status": {"type": "string"}, "severity": {"type": "string"},
            "actor": {"$ref": "#/components/schemas/Actor"},
            "resource": {"$ref": "#/components/schemas/Resource"},
            "details": {"type": ["object", "null"]},
            "seq": {"type": "integer"},
            "verification": {"type": "object", "required": ["hash", "verified"], "properties": {
                "hash": {"type": "string"}, "verified": {"type": "boolean"}}}}},
        "Page": {"type": "object", "required": ["total_count", "returned_count", "page", "audit_logs", "next_page"], "properties": {
            "total_count": {"type": "integer"}, "returned_count": {"type": "integer"},
            "page": {"type": "integer"},
            "audit_logs": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "next_page": {"type": ["string", "null"]}}},
        "QueryBody": {"type": "object", "additionalProperties": false, "properties": {
            "filters": {"type": "object", "additionalProperties": false, "properties": {
                "event_types": strs, "actions": strs, "status": strs,
                "severity": {"type": "array", "items": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]}},
                "date_range": {"type": "object", "additionalProperties": false, "properties": {
                    "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}}},
                "actors": {"type": "object", "additionalProperties": false, "properties": {
                    "user_ids": strs, "emails": strs, "ip_addresses": strs}},
                "resources": {"type": "object", "additionalProperties": false, "properties": {"types": strs, "ids": strs}}}},
            "sort": {"type": "object", "additionalProperties": false, "properties": {
                "field": {"type": "string", "enum": ["timestamp"]}, "order": {"type": "string", "enum": ["asc", "desc"]}}},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
            "include_details": {"type": "boolean"},
            "cursor": {"type": "string"},
            "page": {"type": "integer", "minimum": 1}}},
        "Ingested": {"type": "object", "required": ["accepted", "dropped", "receipts"], "properties": {
            "accepted": {"type": "integer"}, "dropped": {"type": "integer"},
            "receipts": {"type": "array", "items": {"type": "object", "required": ["seq", "event_id", "hash"], "properties": {
                "seq": {"type": "integer"}, "event_id": {"type": "string"}, "hash": {"type": "string"}}}}}},
        "FilterData": {"type": "object", "required": ["dimensions"], "properties": {"dimensions": {
            "type": "object", "additionalProperties": {"type": "object", "required": ["distinct", "values"], "properties": {
                "distinct": {"type": "integer"},
                "values": {"type": "array", "items": {"type": "object", "required": ["value", "count"], "properties": {
                    "value": {"type": "string"}, "count": {"type": "integer"}}}}}}}}},
        "Checkpoint": {"type": "object", "required": ["log_id", "seq", "hash", "count", "time", "time_ns", "mac"], "properties": {
            "log_id": {"type": "string"}, "seq": {"type": "integer"}, "hash": {"type": "string"},
            "count": {"type": "integer"}, "time": {"type": "string"}, "time_ns": {"type": "integer"},
            "mac": {"type": "string"}}},
        "InclusionProof": {"type": "object", "additionalProperties": false,
            "required": ["kind", "leaf_index", "tree_size", "timestamp_ns", "digest", "leaf_hash", "hashes", "root"], "properties": {
            "kind": {"type": "string", "enum": ["inclusion"]},
            "leaf_index": {"type": "integer", "minimum": 0}, "tree_size": {"type": "integer", "minimum": 1},
            "timestamp_ns": {"type": "integer"}, "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "event_id": {"type": "string"},
            "leaf_hash": {"type": "string"}, "hashes": strs, "root": {"type": "string"},
            "checkpoint": {"type": "string", "description": "The C2SP signed checkpoint note of tree_size, when it is the latest signed one."}}},
        "ConsistencyProof": {"type": "object", "additionalProperties": false,
            "required": ["kind", "old_size", "new_size", "old_root", "new_root", "hashes"], "properties": {
            "kind": {"type": "string", "enum": ["consistency"]},
            "old_size": {"type": "integer", "minimum": 1}, "new_size": {"type": "integer", "minimum": 1},
            "old_root": {"type": "string"}, "new_root": {"type": "string"}, "hashes": strs,
            "checkpoint": {"type": "string", "description": "The C2SP signed checkpoint note of new_size (with any witness cosignatures), when it is the latest signed one."}}},
        "VerifyReport": {"type": "object", "required": ["ok", "records"], "properties": {
            "ok": {"type": "boolean"}, "records": {"type": "integer"}, "segments": {"type": "integer"},
            "first_seq": {"type": ["integer", "null"]}, "last_seq": {"type": ["integer", "null"]},
            "last_hash": {"type": ["string", "null"]},
            "checkpoints_checked": {"type": "integer"}, "indexes_checked": {"type": "integer"},
            "failure": {"type": ["object", "null"]},
            "warnings": {"type": "array", "items": {"type": "string"}}}},
    })
}
