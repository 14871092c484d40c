//! The built-in leak scan: one table of named patterns for what an error body must never show
//! (stack traces, driver and ORM errors, framework debug pages, deserializer messages, secrets),
//! for the stacks services are written in. A leaf module: the no-leaks check calls it, and a lab
//! file adds its own patterns through [`LeakScanner::with_extra`].
//!
//! Patterns are aimed at texts that only a machine writes (a frame of a stack trace, an
//! exception's fully qualified name, a debug page's fixed heading), so a message written for a
//! person ("the database is unavailable") never matches. Each one has a test with a real sample
//! and a near miss.

use std::sync::LazyLock;

use regex::Regex;

/// One built-in pattern.
struct Builtin {
    name: &'static str,
    pattern: &'static str,
    /// The matched text is a credential: reports show only its first characters.
    secret: bool,
}

const fn p(name: &'static str, pattern: &'static str) -> Builtin {
    Builtin {
        name,
        pattern,
        secret: false,
    }
}

const fn secret(name: &'static str, pattern: &'static str) -> Builtin {
    Builtin {
        name,
        pattern,
        secret: true,
    }
}

/// Every SQLSTATE PostgreSQL defines, as a regular expression's alternatives, by class, in
/// order: the error code table of its manual (Appendix A, generated from `errcodes.txt`) as of
/// release 15, with the codes added up to 18 (`10608`, `25P04`, `58P03`); a code a release
/// drops stays, since older servers still send it. A macro, so that the SQLSTATE pattern below
/// is one literal, compiled once with the others.
macro_rules! postgres_sqlstates {
    () => {
        concat!(
            "00000|",                                           // successful completion
            "01000|01003|01004|01006|01007|01008|0100C|01P01|", // warning
            "02000|02001|",                                     // no data
            "03000|",                                           // statement not yet complete
            "08000|08001|08003|08004|08006|08007|08P01|",       // connection exception
            "09000|",                                           // triggered action exception
            "0A000|",                                           // feature not supported
            "0B000|",                                           // invalid transaction initiation
            "0F000|0F001|",                                     // locator exception
            "0L000|0LP01|",                                     // invalid grantor
            "0P000|",                                           // invalid role specification
            "0Z000|0Z002|",                                     // diagnostics exception
            "10608|",                                           // XQuery error
            "20000|",                                           // case not found
            "21000|",                                           // cardinality violation
            // data exception
            "22000|22001|22002|22003|22004|22005|22007|22008|22009|2200B|2200C|2200D|2200F|",
            "2200G|2200H|2200L|2200M|2200N|2200S|2200T|22010|22011|22012|22013|22014|22015|",
            "22016|22018|22019|2201B|2201E|2201F|2201G|2201W|2201X|22021|22022|22023|22024|",
            "22025|22026|22027|2202E|2202G|2202H|22030|22031|22032|22033|22034|22035|22036|",
            "22037|22038|22039|2203A|2203B|2203C|2203D|2203E|2203F|2203G|22P01|22P02|22P03|",
            "22P04|22P05|22P06|",
            "23000|23001|23502|23503|23505|23514|23P01|", // integrity constraint violation
            "24000|",                                     // invalid cursor state
            // invalid transaction state
            "25000|25001|25002|25003|25004|25005|25006|25007|25008|25P01|25P02|25P03|25P04|",
            "26000|",                               // invalid statement name
            "27000|",                               // triggered data change violation
            "28000|28P01|",                         // invalid authorization
            "2B000|2BP01|",                         // dependent privilege descriptors
            "2D000|",                               // invalid transaction termination
            "2F000|2F002|2F003|2F004|2F005|",       // SQL routine exception
            "34000|",                               // invalid cursor name
            "38000|38001|38002|38003|38004|",       // external routine exception
            "39000|39001|39004|39P01|39P02|39P03|", // external routine invocation
            "3B000|3B001|",                         // savepoint exception
            "3D000|",                               // invalid catalog name
            "3F000|",                               // invalid schema name
            "40000|40001|40002|40003|40P01|",       // transaction rollback
            // syntax error or access rule violation
            "42000|42501|42601|42602|42611|42622|42701|42702|42703|42704|42710|42712|42723|",
            "42725|42803|42804|42809|42830|42846|42883|428C9|42939|42P01|42P02|42P03|42P04|",
            "42P05|42P06|42P07|42P08|42P09|42P10|42P11|42P12|42P13|42P14|42P15|42P16|42P17|",
            "42P18|42P19|42P20|42P21|42P22|",
            "44000|",                                     // WITH CHECK OPTION violation
            "53000|53100|53200|53300|53400|",             // insufficient resources
            "54000|54001|54011|54023|",                   // program limit exceeded
            "55000|55006|55P02|55P03|55P04|",             // object not in prerequisite state
            "57000|57014|57P01|57P02|57P03|57P04|57P05|", // operator intervention
            "58000|58030|58P01|58P02|58P03|",             // system error
            "72000|",                                     // snapshot failure
            "F0000|F0001|",                               // configuration file error
            // foreign data wrapper error
            "HV000|HV001|HV002|HV004|HV005|HV006|HV007|HV008|HV009|HV00A|HV00B|HV00C|HV00D|",
            "HV00J|HV00K|HV00L|HV00M|HV00N|HV00P|HV00Q|HV00R|HV010|HV014|HV021|HV024|HV090|",
            "HV091|",
            "P0000|P0001|P0002|P0003|P0004|", // PL/pgSQL error
            "XX000|XX001|XX002",              // internal error
        )
    };
}

/// Every built-in pattern, first match wins (more specific ones first where two could match).
const BUILTIN: &[Builtin] = &[
    // --- Rust -------------------------------------------------------------------------------
    p("panic message", r"panicked at|thread '.*' panicked"),
    p("source location", r"\.rs:\d+"),
    p(
        "serde message",
        r"(?i)failed to deserialize|invalid type: [a-z]|expected (?:struct|enum|a sequence|a map|a string|an? (?:integer|boolean|borrowed))\b|unknown variant `|missing field `|unknown field `|duplicate field `|trailing characters at line|EOF while parsing",
    ),
    p(
        "Rust type name",
        r"\b(?:std|core|alloc|serde_json|sqlx|axum|hyper)::[a-z_]+(?:::[A-Za-z_]\w*)*|\b(?:Option|Vec|Result|Box|Arc|HashMap)<[A-Za-z_&]",
    ),
    p(
        "library error",
        r"(?i)pool timed out|\bsqlx\b|hyper::|reqwest::|tokio::",
    ),
    // --- Python -----------------------------------------------------------------------------
    p(
        "Python traceback",
        r#"Traceback \(most recent call last\)|\bFile "[^"\n]+\.py", line \d+"#,
    ),
    // --- JVM (Java, Kotlin) -----------------------------------------------------------------
    p(
        "Java stack trace",
        r#"\bat (?:[a-zA-Z_$][\w$]*\.)+[\w$<>]+\((?:[\w$]+\.(?:java|kt|scala|groovy):\d+|Native Method|Unknown Source)\)|Exception in thread "|\b(?:java|javax|jakarta|kotlin|kotlinx)(?:\.[a-z]\w*)*\.[A-Z]\w*(?:Exception|Error)\b"#,
    ),
    // --- .NET -------------------------------------------------------------------------------
    p(
        ".NET stack trace",
        r"\bin \S[^\n]*\.cs:line \d+|--- End of (?:inner exception )?stack trace|\bSystem(?:\.[A-Z]\w*)*\.[A-Z]\w*Exception\b|\bMicrosoft\.(?:AspNetCore|EntityFrameworkCore|Data\.SqlClient)\.[A-Z]\w*",
    ),
    // --- Go ---------------------------------------------------------------------------------
    p(
        "Go panic",
        r"panic: runtime error:|goroutine \d+ \[(?:running|runnable|chan (?:send|receive)|select|IO wait|semacquire|sleep|syscall|sync\.\w+)|\.go:\d+ \+0x[0-9a-f]+",
    ),
    // --- Node -------------------------------------------------------------------------------
    p(
        "Node stack trace",
        r"\bat (?:[\w$.<>\[\] ]+ \()?(?:file://|node:)?[^\s()]*\.(?:js|mjs|cjs|ts):\d+:\d+\)?|\bat [\w$.<>]+ \(node:internal/",
    ),
    // --- drivers and ORMs -------------------------------------------------------------------
    p(
        "SQLAlchemy error",
        r"\bsqlalchemy\.(?:exc|orm|engine|pool)\.\w+|Background on this error at: https?://sqlalche\.me/",
    ),
    p(
        "psycopg error",
        r"\bpsycopg2?\.(?:errors\.)?[A-Z]\w*|server closed the connection unexpectedly|could not connect to server: ",
    ),
    p(
        "JDBC / Hibernate error",
        r"\borg\.hibernate\.[\w.]+|\borg\.postgresql\.util\.PSQLException|\bjava\.sql\.SQL\w*Exception|\bjdbc:[a-z0-9]+:|could not execute statement; SQL \[",
    ),
    p(
        "ActiveRecord error",
        r"\bActiveRecord::[A-Z]\w*|\bPG::[A-Z]\w*Error|\bMysql2::Error",
    ),
    p(
        "Prisma error",
        r"\bPrismaClient\w*Error\b|Invalid `(?:prisma|tx)\.\w+\.\w+\(\)` invocation",
    ),
    p(
        "MySQL error",
        r"You have an error in your SQL syntax|\bERROR \d{4} \([0-9A-Z]{5}\)|Duplicate entry '[^']*' for key|\bmysqli?_[a-z_]+\(\)",
    ),
    // --- PostgreSQL and SQL -----------------------------------------------------------------
    p(
        "SQL",
        r#"(?i)\b(select\s+.+\s+from|insert\s+into|update\s+\w+\s+set|delete\s+from)\b|relation "|column "|syntax error at"#,
    ),
    p(
        "SQLSTATE",
        // A SQLSTATE PostgreSQL defines after the word or after a driver's `code: ` (sqlx's
        // `code: "42P01"`), or the word itself in text. Only PostgreSQL's own codes: a service's
        // JSON key with its own error codes is not PostgreSQL's (MLflow's `"sqlstate": "KAM00"`
        // and `"sqlstate": "XXM00"`, though class XX is PostgreSQL's).
        concat!(
            r#"(?i)(?:sqlstate[\s:=("']{0,6}|\bcode: "?)(?:"#,
            postgres_sqlstates!(),
            r#")\b|\bsqlstate(?:[^"'a-z0-9_]|$)|error returned from database"#
        ),
    ),
    p(
        "connection string",
        r"(?i)postgres(?:ql)?://|mysql://|redis://|mongodb(?:\+srv)?://|amqps?://",
    ),
    // --- framework debug pages --------------------------------------------------------------
    p(
        "Werkzeug / Flask debug page",
        r"Werkzeug Debugger|\bwerkzeug\.exceptions\.\w+|The debugger caught an exception in your WSGI application",
    ),
    p(
        "Django debug page",
        r"You(?:'|&#x27;|&#39;)re seeing this error because you have <code>DEBUG = True</code>|\bdjango\.(?:db|core|http|urls|template)\.[\w.]+|Exception Value:",
    ),
    p(
        "Rails error page",
        r"\bAction(?:Controller|View|Dispatch)::[A-Z]\w*|Rails\.root: |\bapp/(?:controllers|models|views)/[\w/]+\.(?:rb|erb):\d+",
    ),
    p(
        "Spring Whitelabel page",
        r"Whitelabel Error Page|This application has no explicit mapping for /error",
    ),
    p(
        "Laravel error page",
        r"\bIlluminate\\[A-Z]\w*(?:\\\w+)*|Whoops! There was an error\.|vendor/laravel/framework/",
    ),
    // --- the machine ------------------------------------------------------------------------
    p(
        "file path",
        r#"(^|[\s'"(])/(home|root|usr|var|tmp|etc|opt|proc|srv|work)/"#,
    ),
    p(
        "host and port",
        r"\b(localhost|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}):\d{2,5}\b",
    ),
    p(
        "errno text",
        r"(?i)os error \d+|no space left on device|permission denied|connection refused|too many open files|broken pipe",
    ),
    // --- secrets ----------------------------------------------------------------------------
    secret(
        "cloud access key",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_\-]{35}\b|AccountKey=[A-Za-z0-9+/]{40,}={0,2}",
    ),
    secret(
        "JWT",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    secret(
        "private key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
    ),
];

/// What a body leaks: which pattern, and the text it matched (cut short; a secret shows only
/// its first characters, so a report does not spread it further).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub kind: String,
    pub text: String,
}

/// A pattern a user added does not compile.
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    #[error("leak pattern `{name}` is not a valid regular expression: {source}")]
    BadPattern {
        name: String,
        #[source]
        source: Box<regex::Error>,
    },
}

#[derive(Debug, Clone)]
struct Named {
    name: String,
    regex: Regex,
    secret: bool,
}

/// The patterns, compiled once, tried in order. (A `RegexSet` would scan a body once for all of
/// them, but costs as much again to build as every pattern alone, and error bodies are short.)
#[derive(Debug, Clone)]
pub struct LeakScanner {
    patterns: Vec<Named>,
}

static BUILTIN_SCANNER: LazyLock<LeakScanner> = LazyLock::new(|| {
    let patterns = BUILTIN
        .iter()
        .map(|b| Named {
            name: b.name.to_string(),
            regex: Regex::new(b.pattern).expect("built-in leak patterns compile"),
            secret: b.secret,
        })
        .collect();
    LeakScanner { patterns }
});

/// The longest matched text a [`Leak`] keeps.
const MAX_TEXT: usize = 120;

impl LeakScanner {
    /// The built-in patterns.
    pub fn builtin() -> &'static LeakScanner {
        &BUILTIN_SCANNER
    }

    /// These patterns and `extra` (name, regular expression) after them, e.g. a lab file's own.
    pub fn with_extra<N, P>(
        &self,
        extra: impl IntoIterator<Item = (N, P)>,
    ) -> Result<LeakScanner, LeakError>
    where
        N: Into<String>,
        P: AsRef<str>,
    {
        let mut patterns = self.patterns.clone();
        for (name, pattern) in extra {
            let name = name.into();
            let regex = Regex::new(pattern.as_ref()).map_err(|e| LeakError::BadPattern {
                name: name.clone(),
                source: Box::new(e),
            })?;
            patterns.push(Named {
                name,
                regex,
                secret: false,
            });
        }
        Ok(LeakScanner { patterns })
    }

    /// The names of the patterns, in the order they are tried.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|n| n.name.as_str())
    }

    /// The first pattern `body` matches, if any.
    pub fn find(&self, body: &str) -> Option<Leak> {
        self.patterns.iter().find_map(|named| {
            named.regex.find(body).map(|m| Leak {
                kind: named.name.clone(),
                text: shown(m.as_str(), named.secret),
            })
        })
    }
}

fn shown(text: &str, secret: bool) -> String {
    let keep = if secret { 8 } else { MAX_TEXT };
    if text.chars().count() <= keep && !secret {
        return text.to_string();
    }
    let cut: String = text.chars().take(keep).collect();
    if secret {
        format!("{cut}… (redacted)")
    } else {
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sample` is found as `kind`; `near_miss` is not found at all.
    fn check(kind: &str, sample: &str, near_miss: &str) {
        let s = LeakScanner::builtin();
        let got = s.find(sample);
        assert_eq!(
            got.as_ref().map(|l| l.kind.as_str()),
            Some(kind),
            "sample should leak {kind}: {sample}\n got {got:?}"
        );
        assert_eq!(s.find(near_miss), None, "near miss matched: {near_miss}");
    }

    #[test]
    fn every_builtin_pattern_has_a_test_below() {
        let src = include_str!("leaks.rs");
        let tests = &src[src.find("mod tests").unwrap()..];
        for name in LeakScanner::builtin().names() {
            assert!(
                tests.contains(&format!("\"{name}\",")),
                "no test for the pattern `{name}`"
            );
        }
    }

    #[test]
    fn a_rust_panic_is_a_leak() {
        check(
            "panic message",
            "thread 'tokio-runtime-worker' panicked at src/http/orders.rs:42:9:\nindex out of bounds",
            "Something went wrong; nobody panicked, try again.",
        );
    }

    #[test]
    fn a_rust_source_location_is_a_leak() {
        check(
            "source location",
            "error at src/db.rs:10",
            "see the docs at example.rs for more",
        );
    }

    #[test]
    fn serde_messages_are_leaks() {
        check(
            "serde message",
            "Failed to deserialize the JSON body into the target type: missing field `quantity` at line 1 column 20",
            "The request body must name a product and a quantity.",
        );
        check(
            "serde message",
            "invalid type: string \"x\", expected u32",
            "The quantity must be a whole number.",
        );
        check(
            "serde message",
            "unknown variant `shipped`, expected one of `new`, `paid`",
            "The status must be new or paid.",
        );
    }

    #[test]
    fn rust_type_names_are_leaks() {
        check(
            "Rust type name",
            "cannot convert alloc::string::String into target_app::Money",
            "The name must be a string of at most 100 characters.",
        );
        check(
            "Rust type name",
            "expected Option<u32> here",
            "An optional count may be given.",
        );
    }

    #[test]
    fn library_errors_are_leaks() {
        check(
            "library error",
            "pool timed out while waiting for an open connection",
            "The service is busy; try again shortly.",
        );
    }

    #[test]
    fn a_python_traceback_is_a_leak() {
        check(
            "Python traceback",
            "Traceback (most recent call last):\n  File \"/srv/app/views.py\", line 42, in index\n    return db.query()\nValueError: bad",
            "We could not trace back your last order.",
        );
    }

    #[test]
    fn a_java_stack_trace_is_a_leak() {
        check(
            "Java stack trace",
            "java.lang.NullPointerException: null\n\tat com.example.shop.OrderService.create(OrderService.java:57)\n\tat jdk.internal.reflect.GeneratedMethodAccessor1.invoke(Unknown Source)",
            "Meet us at Main Street (opening 9:00).",
        );
        check(
            "Java stack trace",
            "kotlin.KotlinNullPointerException\n\tat com.example.ApiKt.handle(Api.kt:12)",
            "Kotlin is a language we like.",
        );
    }

    #[test]
    fn a_dotnet_stack_trace_is_a_leak() {
        check(
            ".NET stack trace",
            "System.InvalidOperationException: Sequence contains no elements\n   at Shop.Orders.Get(Int32 id) in /src/Shop/Orders.cs:line 31\n--- End of stack trace from previous location ---",
            "The system found no order with that number.",
        );
    }

    #[test]
    fn a_go_panic_is_a_leak() {
        check(
            "Go panic",
            "panic: runtime error: invalid memory address or nil pointer dereference\n\ngoroutine 1 [running]:\nmain.handler(0x0)\n\tmain.go:17 +0x1d",
            "Do not panic: your order is safe.",
        );
        check(
            "Go panic",
            "goroutine 34 [chan receive]:\nnet/http.(*conn).serve(...)",
            "The goroutine count is fine.",
        );
    }

    #[test]
    fn a_node_stack_trace_is_a_leak() {
        check(
            "Node stack trace",
            "TypeError: Cannot read properties of undefined (reading 'id')\n    at getOrder (/app/src/orders.js:14:22)\n    at Layer.handle [as handle_request] (/app/node_modules/express/lib/router/layer.js:95:5)",
            "See app.js in the examples for the client.",
        );
    }

    #[test]
    fn sqlalchemy_errors_are_leaks() {
        check(
            "SQLAlchemy error",
            "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection failed\n(Background on this error at: https://sqlalche.me/e/20/e3q8)",
            "The alchemy of our recipes is secret.",
        );
    }

    #[test]
    fn psycopg_errors_are_leaks() {
        check(
            "psycopg error",
            "psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint",
            "The psyche of our users matters.",
        );
    }

    #[test]
    fn jdbc_and_hibernate_errors_are_leaks() {
        check(
            "JDBC / Hibernate error",
            "could not execute statement; SQL [n/a]; nested exception is org.hibernate.exception.ConstraintViolationException",
            "Our bears hibernate in winter.",
        );
    }

    #[test]
    fn activerecord_errors_are_leaks() {
        check(
            "ActiveRecord error",
            "ActiveRecord::RecordNotFound: Couldn't find Order with 'id'=7",
            "We keep an active record of your orders.",
        );
    }

    #[test]
    fn prisma_errors_are_leaks() {
        check(
            "Prisma error",
            "PrismaClientKnownRequestError: \nInvalid `prisma.order.create()` invocation:\nUnique constraint failed on the fields: (`id`)",
            "A prism splits light.",
        );
    }

    #[test]
    fn mysql_errors_are_leaks() {
        check(
            "MySQL error",
            "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version",
            "You have an error in your order: the quantity is missing.",
        );
        check(
            "MySQL error",
            "Duplicate entry 'alice@example.com' for key 'users.email'",
            "This e-mail address is already registered.",
        );
    }

    #[test]
    fn sql_text_is_a_leak() {
        check(
            "SQL",
            "SELECT id FROM orders WHERE id = $1",
            "Selecting products is easy; update your basket at any time.",
        );
    }

    #[test]
    fn sqlstate_is_a_leak() {
        check(
            "SQLSTATE",
            "error returned from database: SQLSTATE 57P01",
            "The database is unavailable; try again shortly.",
        );
    }

    #[test]
    fn a_postgres_sqlstate_in_a_json_field_is_a_leak_but_a_services_own_error_class_is_not() {
        check(
            "SQLSTATE",
            r#"{"error": "query failed", "sqlstate": "42P01"}"#,
            r#"{"error_code": "INVALID_PARAMETER_VALUE", "message": "Experiment ID must be a valid integer.", "sqlstate": "KAM00"}"#,
        );
        // MLflow's own code in PostgreSQL's class XX, which PostgreSQL does not define.
        check(
            "SQLSTATE",
            r#"{"error": "internal", "sqlstate": "XX000"}"#,
            r#"{"error_code": "INTERNAL_ERROR", "message": "Migration script directory was in unexpected state. Got 0 head database versions but expected only 1. Found versions: []", "sqlstate": "XXM00"}"#,
        );
        check(
            "SQLSTATE",
            r#"PgDatabaseError { severity: Error, code: "23505", message: "duplicate key" }"#,
            r#"Rejected { code: "E1234", reason: "over the limit" }"#,
        );
    }

    #[test]
    fn only_the_sqlstates_postgresql_defines_match() {
        let s = LeakScanner::builtin();
        let leaks = |code: &str| {
            [
                format!(r#"{{"sqlstate": "{code}"}}"#),
                format!(r#"{{"sqlstate":"{code}"}}"#),
                format!("{{'sqlstate': '{code}'}}"),
                format!(r#"{{code: "{code}"}}"#),
            ]
            .map(|body| s.find(&body).map(|l| l.kind).unwrap_or_default())
        };
        for code in [
            "XX000", "XX001", "XX002", "42P01", "57P01", "23505", "40001", "53300", "00000",
            "0LP01", "2203G", "HV00R", "P0004", "25P04", "58P03", "10608",
        ] {
            assert_eq!(leaks(code), ["SQLSTATE"; 4], "{code}");
        }
        for code in [
            "XXM00", "XX003", "42Z99", "42P99", "KAM00", "59000", "22P08", "HV00Z",
        ] {
            assert_eq!(leaks(code), [""; 4], "{code}");
        }
        // A defined code inside a longer word is not one.
        assert_eq!(s.find(r#"{"sqlstate": "42P01X"}"#), None);
    }

    #[test]
    fn the_sqlstate_table_is_five_characters_each_once_in_order() {
        let codes: Vec<&str> = postgres_sqlstates!().split('|').collect();
        assert_eq!(codes.len(), 263);
        for code in &codes {
            assert!(
                code.len() == 5
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "`{code}` is not a SQLSTATE"
            );
        }
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "a code is listed twice");
        assert_eq!(
            sorted, codes,
            "the table is kept in order, so a code is easy to find"
        );
    }

    #[test]
    fn connection_strings_are_leaks() {
        check(
            "connection string",
            "could not use mongodb+srv://shop:pw@cluster0/shop",
            "Our mongoose mascot says hello.",
        );
    }

    #[test]
    fn a_werkzeug_debug_page_is_a_leak() {
        check(
            "Werkzeug / Flask debug page",
            "<title>KeyError // Werkzeug Debugger</title>",
            "Werkzeug is the German word for tool.",
        );
    }

    #[test]
    fn a_django_debug_page_is_a_leak() {
        check(
            "Django debug page",
            "<p>You&#x27;re seeing this error because you have <code>DEBUG = True</code> in your Django settings file.</p>",
            "Django is a film we have not seen.",
        );
    }

    #[test]
    fn a_rails_error_page_is_a_leak() {
        check(
            "Rails error page",
            "ActionController::RoutingError (No route matches [GET] \"/x\")\nRails.root: /srv/shop",
            "The train left the rails of the old line.",
        );
    }

    #[test]
    fn the_spring_whitelabel_page_is_a_leak() {
        check(
            "Spring Whitelabel page",
            "<h1>Whitelabel Error Page</h1><p>This application has no explicit mapping for /error, so you are seeing this as a fallback.</p>",
            "We sell white label products.",
        );
    }

    #[test]
    fn a_laravel_error_page_is_a_leak() {
        check(
            "Laravel error page",
            "Illuminate\\Database\\QueryException in vendor/laravel/framework/src/Illuminate/Database/Connection.php",
            "Whoops, that product is gone.",
        );
    }

    #[test]
    fn file_paths_are_leaks() {
        check(
            "file path",
            "cannot open /tmp/fivehundred-run-1/data/receipts/x.json",
            "The receipt is not ready yet (see /orders/7 later).",
        );
    }

    #[test]
    fn hosts_and_ports_are_leaks() {
        check(
            "host and port",
            "connect to 10.0.3.7:6379 failed",
            "Version 1.2.3.4 is out; call 555-1234.",
        );
    }

    #[test]
    fn errno_texts_are_leaks() {
        check(
            "errno text",
            "No space left on device (os error 28)",
            "There is no space left in your basket for more items.",
        );
    }

    #[test]
    fn cloud_access_keys_are_leaks_and_shown_redacted() {
        check(
            "cloud access key",
            "aws_access_key_id=AKIAIOSFODNN7EXAMPLE",
            "order AKIA12 is ready",
        );
        let l = LeakScanner::builtin()
            .find("key AKIAIOSFODNN7EXAMPLE")
            .unwrap();
        assert!(!l.text.contains("IOSFODNN7EXAMPLE"), "{l:?}");
    }

    #[test]
    fn jwts_are_leaks() {
        check(
            "JWT",
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "Our brand eyJewel is new.",
        );
    }

    #[test]
    fn private_keys_are_leaks() {
        check(
            "private key",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh...",
        );
    }

    #[test]
    fn a_problem_json_written_for_people_leaks_nothing() {
        for body in [
            r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The database is unavailable; try again shortly."}"#,
            r#"{"title":"Not Found","status":404,"detail":"No product with id 7."}"#,
            r#"{"title":"Bad Request","status":400,"detail":"The request body is not valid JSON: it must be an object with product_id and quantity."}"#,
        ] {
            assert_eq!(LeakScanner::builtin().find(body), None, "{body}");
        }
    }

    #[test]
    fn extra_patterns_are_tried_after_the_builtin_ones() {
        let s = LeakScanner::builtin()
            .with_extra([("internal host", r"\bdb-primary-\d+\b")])
            .unwrap();
        let l = s.find("could not reach db-primary-3").unwrap();
        assert_eq!(l.kind, "internal host");
        assert_eq!(
            LeakScanner::builtin().find("could not reach db-primary-3"),
            None
        );
        assert!(s.find("thread 'main' panicked at x").is_some());
    }

    #[test]
    fn a_bad_extra_pattern_is_refused_with_its_name() {
        let e = LeakScanner::builtin()
            .with_extra([("broken", "(unclosed")])
            .unwrap_err();
        assert!(e.to_string().contains("`broken`"), "{e}");
    }
}
