//! Which controls of each compliance framework a report section evidences.
//! The same table is in docs/REPORTS.md.

use super::request::{Framework, Section};

/// One control of a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
}

/// The framework's controls that the events of `section` are evidence for.
pub fn controls(framework: Framework, section: Section) -> &'static [Control] {
    use Framework::*;
    use Section::*;
    match (framework, section) {
        (Soc2Type2, AuthenticationEvents) => &[
            Control { id: "CC6.1", title: "Logical access security software, infrastructure and architectures" },
            Control { id: "CC6.2", title: "Registration and authorization of users before access is granted" },
        ],
        (Soc2Type2, AuthorizationEvents) => &[
            Control { id: "CC6.1", title: "Logical access security software, infrastructure and architectures" },
            Control { id: "CC6.3", title: "Role-based access: authorizing, modifying and removing access" },
        ],
        (Soc2Type2, ConfigurationChanges) => &[Control { id: "CC8.1", title: "Changes to infrastructure, data, software and procedures are authorized and tracked" }],
        (Soc2Type2, SecurityIncidents) => &[Control { id: "CC7.2", title: "System components are monitored for anomalies indicative of malicious acts" }],
        (Soc2Type2, DataAccess) => &[
            Control { id: "CC6.1", title: "Logical access security software, infrastructure and architectures" },
            Control { id: "CC7.2", title: "System components are monitored for anomalies indicative of malicious acts" },
        ],
        (Iso27001, AuthenticationEvents) => &[
            Control { id: "A.5.15", title: "Access control" },
            Control { id: "A.8.15", title: "Logging" },
        ],
        (Iso27001, AuthorizationEvents) => &[
            Control { id: "A.5.15", title: "Access control" },
            Control { id: "A.8.15", title: "Logging" },
        ],
        (Iso27001, ConfigurationChanges) => &[
            Control { id: "A.8.15", title: "Logging" },
            Control { id: "A.8.32", title: "Change management" },
        ],
        (Iso27001, SecurityIncidents) => &[
            Control { id: "A.8.15", title: "Logging" },
            Control { id: "A.8.16", title: "Monitoring activities" },
        ],
        (Iso27001, DataAccess) => &[
            Control { id: "A.5.15", title: "Access control" },
            Control { id: "A.8.15", title: "Logging" },
        ],
        (Gdpr, AuthenticationEvents) => &[Control { id: "Art. 32(1)(b)", title: "Ongoing confidentiality and integrity of processing systems" }],
        (Gdpr, AuthorizationEvents) => &[
            Control { id: "Art. 25(2)", title: "Data protection by default: access limited to what is necessary" },
            Control { id: "Art. 32(1)(b)", title: "Ongoing confidentiality and integrity of processing systems" },
        ],
        (Gdpr, ConfigurationChanges) => &[Control { id: "Art. 32(1)(d)", title: "Regularly testing, assessing and evaluating the security of processing" }],
        (Gdpr, SecurityIncidents) => &[
            Control { id: "Art. 33", title: "Notification of a personal data breach to the supervisory authority" },
            Control { id: "Art. 34", title: "Communication of a personal data breach to the data subject" },
        ],
        (Gdpr, DataAccess) => &[
            Control { id: "Art. 5(1)(f)", title: "Integrity and confidentiality of personal data" },
            Control { id: "Art. 30", title: "Records of processing activities" },
        ],
        (Hipaa, AuthenticationEvents) => &[
            Control { id: "164.312(d)", title: "Person or entity authentication" },
            Control { id: "164.308(a)(5)(ii)(C)", title: "Log-in monitoring" },
        ],
        (Hipaa, AuthorizationEvents) => &[
            Control { id: "164.312(a)(1)", title: "Access control" },
            Control { id: "164.312(b)", title: "Audit controls" },
        ],
        (Hipaa, ConfigurationChanges) => &[
            Control { id: "164.312(b)", title: "Audit controls" },
            Control { id: "164.308(a)(1)(ii)(D)", title: "Information system activity review" },
        ],
        (Hipaa, SecurityIncidents) => &[
            Control { id: "164.308(a)(6)", title: "Security incident procedures" },
            Control { id: "164.308(a)(1)(ii)(D)", title: "Information system activity review" },
        ],
        (Hipaa, DataAccess) => &[
            Control { id: "164.312(b)", title: "Audit controls" },
            Control { id: "164.312(c)(1)", title: "Integrity" },
        ],
    }
}
