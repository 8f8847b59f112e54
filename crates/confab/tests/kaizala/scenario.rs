//! The connector scenario end to end, driven the way a connector drives it: a plain HTTP
//! client and relaxed JSON. PIN login, a ConnectGroup, subscribers, a message to some of them,
//! a survey, responses from two users, the results, and the webhook calls on a local receiver.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::webhooks::{eventually, fast, signature_ok, Receiver};

/// PIN → refresh token → access token, each call written out as a connector makes it.
async fn pin_login(server: &TestServer, app: &App, mobile: &str) -> Kz {
    let body = format!("{{mobileNumber: '{mobile}', applicationId: '{}'}}", app.id);
    server
        .call(Method::POST, "/v1/generatePin", &[], Some(&body))
        .await
        .expect(200);
    let pin = server.last_pin(mobile);
    let body = format!(
        "{{MobileNumber: '{mobile}', ApplicationId: '{}', Pin: {pin}}}",
        app.id
    );
    let login = server
        .call(
            Method::POST,
            "/v1/loginWithPinAndApplicationId",
            &[],
            Some(&body),
        )
        .await
        .expect(200);
    let refresh = login.body["refreshToken"].as_str().expect("refresh");
    let access = server.access_token(app, refresh).await.expect(200);
    Kz {
        base: server.base.clone(),
        http: server.http.clone(),
        number: mobile.to_owned(),
        token: access.body["accessToken"]
            .as_str()
            .expect("token")
            .to_owned(),
        refresh: refresh.to_owned(),
    }
}

#[tokio::test]
async fn a_connector_runs_a_connect_group_with_a_survey_and_webhooks() {
    let server = TestServer::start_with(fast).await;
    let app = server.app().await;
    let admin = pin_login(&server, &app, &number(1)).await;
    let member = pin_login(&server, &app, &number(2)).await;
    let sam = pin_login(&server, &app, &number(10)).await;

    // A ConnectGroup with one member.
    let created = admin
        .call(
            Method::POST,
            "/groups",
            Some(&format!(
                "{{name: 'Town hall', welcomeMessage: 'Hi', members: ['{}'], groupType: 'ConnectGroup'}}",
                number(2)
            )),
        )
        .await
        .expect(200);
    let group = created.body["groupId"]
        .as_str()
        .expect("groupId")
        .to_owned();

    // The webhook first, so that it sees everything.
    let receiver = Receiver::start().await;
    let hook = admin
        .call(
            Method::POST,
            "/webhook",
            Some(&format!(
                "{{objectId: '{group}', objectType: 'Group', eventTypes: ['TextMessageCreated', \
                 'SurveyCreated', 'SurveyResponse'], callBackUrl: '{}', callBackToken: 'secret-token'}}",
                receiver.url
            )),
        )
        .await
        .expect(200);
    let secret = hook.body["secret"].as_str().expect("secret").to_owned();

    // Subscribers, and a message to some of them.
    admin
        .call(
            Method::PUT,
            &format!("/groups/{group}/subscribers/add"),
            Some(&format!(
                "{{subscribers: ['{}', '{}', '{}']}}",
                number(10),
                number(11),
                number(12)
            )),
        )
        .await
        .expect(200);
    admin
        .call(
            Method::POST,
            &format!("/groups/{group}/messages"),
            Some(&format!(
                "{{Message: 'Hello Sam and Sue', subscribers: ['{}', '{}'], sendToAllSubscribers: false}}",
                number(10),
                number(11)
            )),
        )
        .await
        .expect(200);

    // A survey to everyone; two users respond (a member and a subscriber).
    let survey = admin
        .call(
            Method::POST,
            &format!("/groups/{group}/actions"),
            Some(
                "{actionType: 'Survey', sendToAllSubscribers: true, actionBody: {title: 'Venue?', \
                 questions: [{title: 'Where', type: 'SingleOption', options: [{title: 'Hall'}, \
                 {title: 'Park'}]}]}}",
            ),
        )
        .await
        .expect(200);
    let action = survey.body["actionId"]
        .as_str()
        .expect("actionId")
        .to_owned();
    for (who, choice) in [(&member, "Hall"), (&sam, "Park")] {
        who.call(
            Method::POST,
            &format!("/groups/{group}/actions/{action}/responses"),
            Some(&format!(
                "{{actionType: 'Survey', actionBody: {{Answers: ['{choice}']}}}}"
            )),
        )
        .await
        .expect(200);
    }

    // The results, as the admin sees them.
    let details = admin
        .get(&format!("/groups/{group}/actions/{action}?getDetails=true"))
        .await
        .expect(200);
    let responses = details.body["actionDetails"]["responses"]
        .as_array()
        .expect("responses");
    assert_eq!(responses.len(), 2);
    let counts: Vec<&Value> = details.body["actionDetails"]["results"][0]["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| &o["count"])
        .collect();
    assert_eq!(counts, [&json!(1), &json!(1)]);

    // The webhook calls.
    eventually(&server, "the four webhook calls", || {
        receiver.of("TextMessageCreated").len() == 1
            && receiver.of("SurveyCreated").len() == 1
            && receiver.of("SurveyResponse").len() == 2
    })
    .await;
    assert_eq!(
        receiver.of("TextMessageCreated")[0].json["data"]["text"],
        "Hello Sam and Sue"
    );
    assert_eq!(
        receiver.of("SurveyCreated")[0].json["data"]["actionId"],
        action.as_str()
    );
    let responders: HashSet<String> = receiver
        .of("SurveyResponse")
        .iter()
        .map(|c| c.json["data"]["responder"].as_str().expect("r").to_owned())
        .collect();
    assert_eq!(responders, HashSet::from([number(2), number(10)]));
    for call in receiver.calls() {
        assert_eq!(call.headers["kz-callback-token"], "secret-token");
        assert!(signature_ok(&call, &secret));
        assert_eq!(call.json["objectId"], group.as_str());
    }
}
