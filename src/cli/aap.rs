//! `hkms aap`: application access points, one per application, each with up to three
//! policies and the ClientKeys the application authenticates with.

use super::resource::{self, Printed, Row, View};
use crate::access::clientkey;
use crate::client::Client;
use crate::proto::{
    ApplicationAccessPoint, ApplicationAccessPointSummary, CreateApplicationAccessPointRequest,
    DeleteApplicationAccessPointRequest, DescribeApplicationAccessPointRequest,
    ListApplicationAccessPointsRequest, UpdateApplicationAccessPointRequest,
};
use clap::Subcommand;
use serde_json::{json, Value};
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum AapCommand {
    /// Create an application access point (one per application) with up to three policies.
    ///
    /// Example: hkms aap create --name billing --policies app-keys
    Create {
        /// AAP name: 1 to 64 letters, digits, '_', '-', '.', '/'.
        #[arg(long)]
        name: String,
        /// Up to three policy names, comma separated.
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List AAPs with their ClientKeys' remaining validity (DAYS LEFT).
    List,
    /// Show an AAP and its ClientKeys.
    Describe { name: String },
    /// Replace an AAP's policies and/or description.
    Update {
        name: String,
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an AAP that has no ClientKeys left.
    Delete { name: String },
}

impl View for ApplicationAccessPoint {
    const KEY: &'static str = "ApplicationAccessPoint";

    fn json(&self) -> Value {
        json!({
            "Name": self.name, "AuthenticationMethod": self.authentication_method,
            "Policies": self.policies, "Description": self.description,
            "CreateTime": self.create_time, "UpdateTime": self.update_time,
        })
    }

    fn text(&self) -> String {
        format!(
            "Name:                 {}\nAuthenticationMethod: {}\nPolicies:             {}\nDescription:          {}\nCreateTime:           {}",
            self.name,
            self.authentication_method,
            self.policies.join(", "),
            self.description,
            self.create_time
        )
    }
}

/// An AAP in a list, with how many ClientKeys it has and the longest validity left.
impl Row for ApplicationAccessPointSummary {
    const LIST_KEY: &'static str = "ApplicationAccessPoints";

    fn header() -> String {
        format!(
            "{:<24} {:<36} {:>11} {:>9}",
            "NAME", "POLICIES", "CLIENT KEYS", "DAYS LEFT"
        )
    }

    fn row(&self) -> String {
        let a = self.aap.clone().unwrap_or_default();
        let days = if self.days_left < 0 && self.client_key_count == 0 {
            "-".to_owned()
        } else {
            self.days_left.to_string()
        };
        let warn = if self.client_key_count > 0 && self.days_left <= clientkey::WARN_DAYS {
            "  <- change its ClientKey soon"
        } else {
            ""
        };
        format!(
            "{:<24} {:<36} {:>11} {:>9}{warn}",
            a.name,
            a.policies.join(","),
            self.client_key_count,
            days
        )
    }

    fn entry(&self) -> Value {
        let mut v = self.aap.clone().unwrap_or_default().json();
        v["ClientKeyCount"] = json!(self.client_key_count);
        v["DaysLeft"] = if self.client_key_count == 0 {
            Value::Null
        } else {
            json!(self.days_left)
        };
        v
    }
}

/// Runs one `hkms aap` command.
pub async fn aap(c: &mut Client, cmd: &AapCommand) -> Result<Printed, Status> {
    let api = &mut c.access;
    match cmd {
        AapCommand::Create {
            name,
            policies,
            description,
        } => {
            let aap = ApplicationAccessPoint {
                name: name.clone(),
                authentication_method: "ClientKey".into(),
                policies: policies.clone(),
                description: description.clone(),
                ..Default::default()
            };
            let req = CreateApplicationAccessPointRequest { aap: Some(aap) };
            resource::one(api.create_application_access_point(req), |r| r.aap).await
        }
        AapCommand::List => {
            let req = ListApplicationAccessPointsRequest {};
            resource::list(api.list_application_access_points(req), |r| r.aaps).await
        }
        AapCommand::Describe { name } => {
            let req = DescribeApplicationAccessPointRequest { name: name.clone() };
            let r = api
                .describe_application_access_point(req)
                .await?
                .into_inner();
            let (mut t, mut j) = resource::record(r.aap);
            t.push_str("\n\n");
            t.push_str(&resource::table(&r.client_keys));
            j["ClientKeys"] = json!(r.client_keys.iter().map(Row::entry).collect::<Vec<_>>());
            Ok((t, j))
        }
        AapCommand::Update {
            name,
            policies,
            description,
        } => {
            let req = UpdateApplicationAccessPointRequest {
                name: name.clone(),
                policies: policies.clone(),
                description: description.clone(),
                // Not an operator option of this command: left as it is.
                managed_product: None,
            };
            resource::one(api.update_application_access_point(req), |r| r.aap).await
        }
        AapCommand::Delete { name } => {
            let req = DeleteApplicationAccessPointRequest { name: name.clone() };
            resource::deleted(api.delete_application_access_point(req), "AAP", name).await
        }
    }
}
