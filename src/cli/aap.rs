//! `hkms aap`: application access points, one per application, each with up to three
//! policies and the ClientKeys the application authenticates with.

use super::aap_quick;
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
use std::path::{Path, PathBuf};
use tonic::Status;

const CREATE_EXAMPLES: &str = "\
Examples:
  # Quick creation: every key and secret of the instance, a ClientKey valid 5 years:
  hkms aap create --quick --name billing --output-dir ./billing
  # -> policies billing-keys and billing-secrets, and in ./billing the application's files
  #    clientKey_KAAP.<id>.json and clientKey_KAAP.<id>_Password.txt

  # Standard creation: your own policies, then a ClientKey (one year by default):
  hkms policy create --name billing-keys --role CryptoServiceKeyUser \\
      --resources alias/billing --network-rules office
  hkms aap create --name billing --policies billing-keys
  hkms client-key create --aap billing --output-dir ./billing";

#[derive(Debug, Subcommand)]
pub enum AapCommand {
    /// Create an application access point (one per application): with up to three policies
    /// of your choosing, or with --quick, with access to every key and secret and its
    /// ClientKey in one go.
    ///
    /// Standard creation attaches the policies you made (hkms policy create); then create
    /// the application's ClientKey with hkms client-key create (valid one year by default).
    ///
    /// Quick creation (--quick) makes the policies <NAME>-keys (CryptoServiceKeyUser on
    /// key/*) and <NAME>-secrets (CryptoServiceSecretUser on secret/*), attaches them, and
    /// creates a ClientKey valid 5 years whose two files it writes into --output-dir:
    /// clientKey_<KeyId>.json and clientKey_<KeyId>_Password.txt. It refuses a name whose
    /// AAP or policies exist already, before creating anything.
    #[command(after_long_help = CREATE_EXAMPLES)]
    Create {
        /// AAP name: 1 to 64 letters, digits, '_', '-', '.', '/' (with --quick, at most 56,
        /// to leave room for "-secrets").
        #[arg(long)]
        name: String,
        /// Up to three policy names, comma separated (standard creation).
        #[arg(long, value_delimiter = ',', conflicts_with = "quick")]
        policies: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Make this AAP the principal of a product: it alone creates, changes and deletes
        /// the managed secrets "<product>!<identifier>" (1 to 32 lowercase letters, digits,
        /// '-', starting with a letter; one AAP per product).
        #[arg(long, value_name = "PRODUCT", conflicts_with = "quick")]
        managed_product: Option<String>,
        /// Quick creation: access to every key and secret of the instance, and a ClientKey
        /// valid 5 years. Needs --output-dir.
        #[arg(long, requires = "output_dir")]
        quick: bool,
        /// With --quick: the directory for the ClientKey's two files (created if missing;
        /// files are mode 0600 and never overwritten).
        #[arg(long, requires = "quick")]
        output_dir: Option<PathBuf>,
        /// With --quick: a file whose first line is the ClientKey password (8 to 64
        /// characters with at least two of digits, letters and ~!@#$%^&*?_-). Without it a
        /// strong password is generated and written to the password file.
        #[arg(long, requires = "quick")]
        password_file: Option<PathBuf>,
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
        /// Make this AAP the principal of a product (see `aap create --help`).
        #[arg(long, value_name = "PRODUCT", conflicts_with = "no_managed_product")]
        managed_product: Option<String>,
        /// This AAP manages no product's secrets any more.
        #[arg(long)]
        no_managed_product: bool,
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
            "ManagedProduct": self.managed_product,
        })
    }

    fn text(&self) -> String {
        let mut t = format!(
            "Name:                 {}\nAuthenticationMethod: {}\nPolicies:             {}\nDescription:          {}\nCreateTime:           {}",
            self.name,
            self.authentication_method,
            self.policies.join(", "),
            self.description,
            self.create_time
        );
        if !self.managed_product.is_empty() {
            t.push_str(&managed_words(&self.managed_product));
        }
        t
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
        ) + &a.managed_product_suffix()
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
    if let AapCommand::Create {
        name,
        description,
        quick: true,
        output_dir,
        password_file,
        ..
    } = cmd
    {
        let quick = aap_quick::Quick {
            name,
            description,
            output_dir: output_dir.as_deref().unwrap_or(Path::new(".")),
            password_file: password_file.as_deref(),
        };
        return aap_quick::create(c, quick).await;
    }
    let api = &mut c.access;
    match cmd {
        AapCommand::Create {
            name,
            policies,
            description,
            managed_product,
            ..
        } => {
            let aap = ApplicationAccessPoint {
                name: name.clone(),
                authentication_method: "ClientKey".into(),
                policies: policies.clone(),
                description: description.clone(),
                managed_product: managed_product.clone().unwrap_or_default(),
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
            managed_product,
            no_managed_product,
        } => {
            let req = UpdateApplicationAccessPointRequest {
                name: name.clone(),
                policies: policies.clone(),
                description: description.clone(),
                managed_product: if *no_managed_product {
                    Some(String::new())
                } else {
                    managed_product.clone()
                },
            };
            resource::one(api.update_application_access_point(req), |r| r.aap).await
        }
        AapCommand::Delete { name } => {
            let req = DeleteApplicationAccessPointRequest { name: name.clone() };
            resource::deleted(api.delete_application_access_point(req), "AAP", name).await
        }
    }
}

/// The line `aap describe` adds for the principal of a product.
fn managed_words(product: &str) -> String {
    format!("\nManagedProduct:       {product} (this AAP alone creates, changes and deletes the secrets {product}!...)")
}

impl ApplicationAccessPoint {
    /// What `aap list` adds to the line of the principal of a product.
    fn managed_product_suffix(&self) -> String {
        if self.managed_product.is_empty() {
            String::new()
        } else {
            format!("  manages {}!*", self.managed_product)
        }
    }
}
