//! What each message says. A letter is drafted once as a list of blocks of plain text, and
//! the text and HTML parts are both printed from that draft, so the two always say the same
//! thing. Every block is plain text: the HTML printer escapes all of it, so no value (the
//! product's name, a code, a link, an address) can add markup. No remote images, no
//! tracking: the HTML part is self-contained, with inline styles only.
//!
//! The text part is what other code reads back (the test SMTP sink, people's mail filters):
//! a code-carrying letter has a line `Your code: XXXXXXXX`, and its link alone on the line
//! after `Or open this link:`.

use super::{Letter, Rendered};

/// The label before the code in the text part, on the code's own line.
pub const CODE_LABEL: &str = "Your code: ";

/// One piece of a letter, in plain text.
enum Block {
    Paragraph(String),
    /// The one-time code, set apart so that it is easy to read and copy.
    Code(String),
    /// A link on a line of its own, after a short lead-in.
    Link {
        lead: String,
        url: String,
    },
}

struct Draft {
    subject: String,
    blocks: Vec<Block>,
}

pub fn render(letter: &Letter, app_name: &str) -> Rendered {
    let draft = draft(letter, app_name);
    Rendered {
        text: text(&draft, app_name),
        html: html(&draft, app_name),
        subject: draft.subject,
    }
}

fn draft(letter: &Letter, app: &str) -> Draft {
    use Block::Paragraph;
    match letter {
        Letter::PasswordReset {
            code,
            link,
            valid_for_minutes,
        } => Draft {
            subject: format!("Reset your {app} password"),
            blocks: with_code(
                format!(
                    "Someone asked to reset the password of the {app} account with this email \
                     address. To choose a new password, enter this code:"
                ),
                code,
                link,
                *valid_for_minutes,
                "your password stays as it is.",
            ),
        },
        Letter::PasswordChanged => Draft {
            subject: format!("Your {app} password was changed"),
            blocks: vec![
                Paragraph(format!(
                    "The password of your {app} account was just changed with a reset code \
                     sent to this address, and every session signed in before was signed out."
                )),
                Paragraph("If this was you, there is nothing more to do.".to_owned()),
                Paragraph(format!(
                    "If it was not you, someone can read this mailbox or got hold of a code: \
                     secure your email account first, then reset your {app} password again \
                     right away."
                )),
            ],
        },
        Letter::EmailVerification {
            code,
            link,
            valid_for_minutes,
        } => Draft {
            subject: format!("Confirm your email address for {app}"),
            blocks: with_code(
                format!(
                    "To confirm that this email address belongs to your {app} account, enter \
                     this code:"
                ),
                code,
                link,
                *valid_for_minutes,
                "without the code, nothing changes.",
            ),
        },
        Letter::EmailChangeRequested { new_email } => Draft {
            subject: format!("Your {app} email address is about to change"),
            blocks: vec![
                Paragraph(format!(
                    "Someone signed in to your {app} account asked to change its email address \
                     to {new_email}."
                )),
                Paragraph(
                    "The change happens only once a code sent to that new address is \
                     confirmed; until then, this address stays the account's."
                        .to_owned(),
                ),
                Paragraph(format!(
                    "If this was not you, someone knows your password: change your {app} \
                     password right away."
                )),
            ],
        },
        Letter::Test => Draft {
            subject: format!("{app} test message"),
            blocks: vec![
                Paragraph(format!(
                    "This is a test message from {app}, sent with `latchkey mail test`."
                )),
                Paragraph(format!(
                    "If you can read it, mail from {app} reaches this address. There is \
                     nothing to do."
                )),
            ],
        },
    }
}

/// A code-carrying letter: what the code is for, the code, its link, how long they live,
/// and what ignoring the mail means.
fn with_code(
    purpose: String,
    code: &str,
    link: &str,
    valid_for_minutes: u64,
    if_ignored: &str,
) -> Vec<Block> {
    vec![
        Block::Paragraph(purpose),
        Block::Code(code.to_owned()),
        Block::Link {
            lead: "Or open this link:".to_owned(),
            url: link.to_owned(),
        },
        Block::Paragraph(format!(
            "The code and the link are valid for {} and work once.",
            lifetime(valid_for_minutes)
        )),
        Block::Paragraph(format!(
            "If you did not ask for this, ignore this mail: {if_ignored}"
        )),
    ]
}

/// `30 minutes`, `1 minute`, `2 hours`.
fn lifetime(minutes: u64) -> String {
    let (count, unit) = if minutes >= 60 && minutes.is_multiple_of(60) {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

fn text(draft: &Draft, app: &str) -> String {
    let mut text = String::new();
    for block in &draft.blocks {
        match block {
            Block::Paragraph(paragraph) => text.push_str(paragraph),
            Block::Code(code) => {
                text.push_str(CODE_LABEL);
                text.push_str(code);
            }
            Block::Link { lead, url } => {
                text.push_str(lead);
                text.push('\n');
                text.push_str(url);
            }
        }
        text.push_str("\n\n");
    }
    text.push_str("— ");
    text.push_str(app);
    text.push('\n');
    text
}

const PARAGRAPH_STYLE: &str = "margin:0 0 16px";
const CODE_STYLE: &str = "margin:0 0 16px;font-family:Menlo,Consolas,'Courier New',monospace;\
                          font-size:28px;font-weight:bold;letter-spacing:4px";
const LINK_STYLE: &str = "color:#0b57d0;word-break:break-all";

fn html(draft: &Draft, app: &str) -> String {
    let mut body = String::new();
    for block in &draft.blocks {
        match block {
            Block::Paragraph(paragraph) => {
                body.push_str(&format!(
                    "<p style=\"{PARAGRAPH_STYLE}\">{}</p>\n",
                    escape(paragraph)
                ));
            }
            Block::Code(code) => {
                body.push_str(&format!(
                    "<p style=\"{PARAGRAPH_STYLE}\">{}</p>\n<p style=\"{CODE_STYLE}\">{}</p>\n",
                    escape(CODE_LABEL.trim_end()),
                    escape(code)
                ));
            }
            Block::Link { lead, url } => {
                let url = escape(url);
                body.push_str(&format!(
                    "<p style=\"{PARAGRAPH_STYLE}\">{}<br>\n<a href=\"{url}\" \
                     style=\"{LINK_STYLE}\">{url}</a></p>\n",
                    escape(lead)
                ));
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         </head>\n\
         <body style=\"margin:0;padding:24px;background:#f4f4f5;color:#1f2328;\
         font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;\
         line-height:1.5\">\n\
         <div style=\"max-width:560px;margin:0 auto;padding:24px;background:#ffffff;\
         border-radius:8px\">\n\
         {body}\
         <p style=\"margin:24px 0 0;color:#59636e\">— {app}</p>\n\
         </div>\n\
         </body>\n\
         </html>\n",
        title = escape(&draft.subject),
        app = escape(app),
    )
}

/// Text as HTML, for element content and quoted attribute values alike.
fn escape(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for character in raw.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "7K3M9QZP";
    const LINK: &str = "http://localhost:8080/#reset?code=7K3M9QZP&email=ada%40example.com";

    fn every_letter() -> Vec<Letter> {
        vec![
            Letter::PasswordReset {
                code: CODE.into(),
                link: LINK.into(),
                valid_for_minutes: 30,
            },
            Letter::PasswordChanged,
            Letter::EmailVerification {
                code: CODE.into(),
                link: LINK.into(),
                valid_for_minutes: 30,
            },
            Letter::EmailChangeRequested {
                new_email: "new@example.com".into(),
            },
            Letter::Test,
        ]
    }

    #[test]
    fn every_subject_names_the_app_and_every_part_signs_with_it() {
        for letter in every_letter() {
            let rendered = render(&letter, "Acme ID");
            assert!(rendered.subject.contains("Acme ID"), "{letter:?}");
            assert!(rendered.text.ends_with("— Acme ID\n"), "{letter:?}");
            assert!(rendered.html.contains("— Acme ID</p>"), "{letter:?}");
        }
    }

    #[test]
    fn codes_and_links_are_in_both_parts() {
        for letter in [&every_letter()[0], &every_letter()[2]] {
            let rendered = render(letter, "Latchkey");
            assert!(
                rendered.text.contains(&format!("\nYour code: {CODE}\n")),
                "{}",
                rendered.text
            );
            assert!(
                rendered
                    .text
                    .contains(&format!("\nOr open this link:\n{LINK}\n")),
                "{}",
                rendered.text
            );
            assert!(rendered.text.contains("valid for 30 minutes"));
            assert!(
                rendered
                    .text
                    .contains("If you did not ask for this, ignore")
            );
            assert!(rendered.html.contains(&format!(">{CODE}</p>")));
            let escaped_link = LINK.replace('&', "&amp;");
            assert!(
                rendered
                    .html
                    .contains(&format!("<a href=\"{escaped_link}\"")),
                "{}",
                rendered.html
            );
            assert!(rendered.html.contains("valid for 30 minutes"));
        }
    }

    #[test]
    fn the_app_name_is_escaped_in_html_and_raw_in_text() {
        for letter in every_letter() {
            let rendered = render(&letter, "<b>&\"Co'");
            assert!(rendered.subject.contains("<b>&\"Co'"));
            assert!(rendered.text.contains("<b>&\"Co'"), "{letter:?}");
            assert!(
                rendered.html.contains("&lt;b&gt;&amp;&quot;Co&#39;"),
                "{letter:?}"
            );
            assert!(!rendered.html.contains("<b>"), "{letter:?}");
        }
    }

    #[test]
    fn every_interpolated_value_is_escaped_in_html() {
        let letter = Letter::EmailChangeRequested {
            new_email: "\"<script>\"@example.com".into(),
        };
        let rendered = render(&letter, "Latchkey");
        assert!(rendered.text.contains("to \"<script>\"@example.com."));
        assert!(
            rendered
                .html
                .contains("to &quot;&lt;script&gt;&quot;@example.com.")
        );
        assert!(!rendered.html.contains("<script>"));

        let letter = Letter::PasswordReset {
            code: "<i>".into(),
            link: "https://x.example/\"><img src=x>".into(),
            valid_for_minutes: 30,
        };
        let html = render(&letter, "Latchkey").html;
        assert!(!html.contains("<i>") && !html.contains("<img"), "{html}");
        assert!(html.contains("href=\"https://x.example/&quot;&gt;&lt;img src=x&gt;\""));
    }

    #[test]
    fn the_html_part_loads_nothing() {
        for letter in every_letter() {
            let html = render(&letter, "Latchkey").html;
            assert!(
                !html.contains("<img") && !html.contains("src="),
                "{letter:?}"
            );
            assert!(!html.contains("url("), "{letter:?}");
        }
    }

    #[test]
    fn the_notices_say_what_to_do_if_it_was_not_you() {
        let changed = render(&Letter::PasswordChanged, "Latchkey").text;
        assert!(changed.contains("password of your Latchkey account was just changed"));
        assert!(changed.contains("If it was not you"));

        let letter = Letter::EmailChangeRequested {
            new_email: "new@example.com".into(),
        };
        let change = render(&letter, "Latchkey").text;
        assert!(change.contains("to new@example.com."));
        assert!(change.contains("If this was not you"));
        assert!(change.contains("change your Latchkey password"));

        assert!(
            render(&Letter::Test, "Latchkey")
                .text
                .contains("test message")
        );
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(lifetime(30), "30 minutes");
        assert_eq!(lifetime(1), "1 minute");
        assert_eq!(lifetime(60), "1 hour");
        assert_eq!(lifetime(120), "2 hours");
        assert_eq!(lifetime(90), "90 minutes");
    }
}
