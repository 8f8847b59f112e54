//! The `ActionStore` contract: actions beside their messages, responses (new, update, the
//! one-response rule), keyset pages by kind, package, time and subscriber, and the events.

use confab_core::actions::{ActionBody, ActionKind, Answer, Question, QuestionType, ResponseBody};
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Audience, ConversationKind, EventKind, MessageContent, MessageType, Metadata, Participant, Role,
};
use confab_core::ports::{
    ActionQuery, Clock, NewAction, NewActionResponse, NewConversation, NewMessage, Store,
    StoreError,
};
use time::Duration;

use crate::Fixture;

fn user(n: u32) -> IdentityId {
    IdentityId::phone(&format!("+1425555{n:04}")).expect("phone")
}

async fn group(store: &dyn Store, kind: ConversationKind) -> ConversationId {
    let id = ConversationId::generate();
    store
        .create_conversation(NewConversation {
            id,
            topic: "G".into(),
            created_by: user(1),
            metadata: Metadata::new(),
            retention: None,
            participants: [(1, Role::Admin), (2, Role::Member)]
                .into_iter()
                .map(|(n, role)| Participant {
                    identity: user(n),
                    display_name: None,
                    share_history_time: None,
                    metadata: Metadata::new(),
                    role,
                })
                .collect(),
            repeatability_key: None,
            kind,
            welcome_message: None,
        })
        .await
        .expect("create");
    id
}

fn body(kind: ActionKind, title: &str, package: Option<&str>) -> ActionBody {
    ActionBody {
        kind,
        package: package.map(str::to_owned),
        title: title.into(),
        message: None,
        questions: vec![Question {
            title: "q".into(),
            kind: QuestionType::SingleOption,
            options: vec!["a".into(), "b".into()],
            invisible: false,
        }],
        choice_images: vec![],
        anonymous: false,
        sender_only: false,
        multiple_responses: false,
        due: None,
        assignees: vec![],
        properties: vec![],
        media: vec![],
        meeting: None,
    }
}

fn new_action(conversation: ConversationId, body: ActionBody, audience: Audience) -> NewAction {
    NewAction {
        message: NewMessage {
            conversation,
            kind: MessageType::Text,
            content: MessageContent {
                text: Some(body.title.clone()),
                ..Default::default()
            },
            sender: Some(user(1)),
            sender_display_name: None,
            metadata: Metadata::new(),
            audience,
        },
        body,
        media: vec![],
    }
}

fn response(
    conversation: ConversationId,
    action: MessageId,
    who: u32,
    id: &str,
    update: bool,
    choice: usize,
) -> NewActionResponse {
    NewActionResponse {
        conversation,
        action,
        responder: user(who),
        id: id.into(),
        update,
        body: ResponseBody {
            answers: vec![Answer::Option(choice)],
            completed: Some(choice == 1),
            name: None,
            location: None,
        },
        allow_multiple: false,
        hide_responder: false,
    }
}

pub async fn actions_and_responses(f: Fixture) {
    let store = &*f.store;
    let g = group(store, ConversationKind::Group).await;
    let survey = store
        .create_action(new_action(
            g,
            body(ActionKind::Survey, "S", None),
            Audience::Members,
        ))
        .await
        .expect("create");
    // The message carries the action id; the action reads back with its body.
    let message = store
        .get_message(g, survey.id)
        .await
        .expect("get")
        .expect("message");
    assert_eq!(message.kind, MessageType::Text);
    assert_eq!(
        message.metadata.get("kaizalaActionId"),
        Some(&survey.id.to_string())
    );
    let read = store
        .get_action(g, survey.id)
        .await
        .expect("read")
        .expect("action");
    assert_eq!(read.body, survey.body);
    assert_eq!(read.response_count, 0);
    assert!(store
        .get_action(ConversationId::generate(), survey.id)
        .await
        .expect("read")
        .is_none());

    // Responses: one per responder unless allowed; updates by id and responder only.
    let first = store
        .put_action_response(response(g, survey.id, 2, "r-1", false, 0))
        .await
        .expect("respond");
    assert_eq!(first.updated_on, None);
    assert!(matches!(
        store
            .put_action_response(response(g, survey.id, 2, "r-2", false, 0))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut again = response(g, survey.id, 2, "r-2", false, 1);
    again.allow_multiple = true;
    store.put_action_response(again).await.expect("second");
    // A response id in use (here by another responder's response) is a conflict on every
    // store, not a failure of the store.
    assert!(matches!(
        store
            .put_action_response(response(g, survey.id, 3, "r-1", false, 0))
            .await,
        Err(StoreError::Conflict(_))
    ));
    f.clock.advance(Duration::seconds(5));
    let updated = store
        .put_action_response(response(g, survey.id, 2, "r-1", true, 1))
        .await
        .expect("update");
    assert_eq!(updated.created_on, first.created_on);
    assert!(updated.updated_on.is_some());
    assert_eq!(
        store
            .put_action_response(response(g, survey.id, 1, "r-1", true, 1))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .put_action_response(response(g, MessageId(1), 2, "r-9", false, 1))
            .await,
        Err(StoreError::NotFound)
    );
    let all = store
        .list_action_responses(survey.id, 10)
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r-1", "r-2"]
    );
    assert_eq!(all[0].body.answers, [Answer::Option(1)]);
    let fetched = store
        .get_action_response(survey.id, "r-2")
        .await
        .expect("get")
        .expect("r-2");
    assert_eq!(fetched.responder, user(2));
    let counted = store
        .get_action(g, survey.id)
        .await
        .expect("read")
        .expect("action");
    assert_eq!(
        (
            counted.response_count,
            counted.responder_count,
            counted.completed_count
        ),
        (2, 1, 1)
    );

    // A deleted message takes its action with it.
    store.delete_message(g, survey.id).await.expect("delete");
    assert!(store
        .get_action(g, survey.id)
        .await
        .expect("read")
        .is_none());

    let events = f.events().await;
    assert_eq!(
        events.iter().filter(|e| *e == "actionCreated").count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| *e == "actionResponse").count(), 3);
}

pub async fn action_pages(f: Fixture) {
    let store = &*f.store;
    let g = group(store, ConversationKind::ConnectGroup).await;
    store
        .add_subscribers(g, vec![user(10), user(11)], &user(1))
        .await
        .expect("subscribe");
    let start = f.clock.now();
    let mut ids = Vec::new();
    for i in 0..6 {
        let (kind, package, audience) = match i % 3 {
            0 => (ActionKind::Survey, None, Audience::Members),
            1 => (ActionKind::Poll, None, Audience::AllSubscribers),
            _ => (
                ActionKind::Custom,
                Some("com.example.Pkg"),
                Audience::Subscribers(vec![user(10)]),
            ),
        };
        let action = store
            .create_action(new_action(
                g,
                body(kind, &format!("A{i}"), package),
                audience,
            ))
            .await
            .expect("create");
        ids.push(action.id);
        f.clock.advance(Duration::minutes(1));
    }
    let titles = |page: &confab_core::model::Page<confab_core::actions::Action>| {
        page.items
            .iter()
            .map(|a| a.body.title.clone())
            .collect::<Vec<_>>()
    };
    // Every action, two a page, oldest first.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_actions(
                g,
                ActionQuery {
                    after: after.clone(),
                    limit: 2,
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        seen.extend(titles(&page));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["A0", "A1", "A2", "A3", "A4", "A5"]);
    // By kind, by package (any case), from a time, for a subscriber.
    let query = |kind: Option<&str>, from, subscriber| ActionQuery {
        kind: kind.map(str::to_owned),
        created_from: from,
        after: None,
        limit: 10,
        subscriber,
    };
    let polls = store
        .list_actions(g, query(Some("Poll"), None, None))
        .await
        .expect("polls");
    assert_eq!(titles(&polls), ["A1", "A4"]);
    let package = store
        .list_actions(g, query(Some("COM.EXAMPLE.PKG"), None, None))
        .await
        .expect("package");
    assert_eq!(titles(&package), ["A2", "A5"]);
    let recent = store
        .list_actions(g, query(None, Some(start + Duration::minutes(3)), None))
        .await
        .expect("recent");
    assert_eq!(titles(&recent), ["A3", "A4", "A5"]);
    let sam = store
        .list_actions(g, query(None, None, Some(user(10))))
        .await
        .expect("sam");
    assert_eq!(titles(&sam), ["A1", "A2", "A4", "A5"]);
    let sue = store
        .list_actions(g, query(None, None, Some(user(11))))
        .await
        .expect("sue");
    assert_eq!(titles(&sue), ["A1", "A4"]);
    assert_eq!(
        store
            .list_actions(
                g,
                ActionQuery {
                    after: Some("x".into()),
                    limit: 2,
                    ..Default::default()
                }
            )
            .await
            .err(),
        Some(StoreError::InvalidCursor)
    );
    assert_eq!(ids.len(), 6);
}

/// A media action links its files to its message in the same write, and its creation event
/// says it is an attachment.
pub async fn media_actions(f: Fixture) {
    let store = &*f.store;
    let g = group(store, ConversationKind::Group).await;
    const FILE: &str = "0123456789abcdef0123456789abcdef";
    assert!(!store
        .media_visible_to(FILE, &user(2))
        .await
        .expect("visible"));
    let mut new = new_action(g, body(ActionKind::Image, "A cat", None), Audience::Members);
    new.body.questions.clear();
    new.body.media = vec![FILE.into()];
    new.media = vec![FILE.into()];
    let action = store.create_action(new).await.expect("create");
    assert!(store
        .media_visible_to(FILE, &user(2))
        .await
        .expect("visible"));
    assert!(!store
        .media_visible_to(FILE, &user(3))
        .await
        .expect("visible"));
    let read = store
        .get_action(g, action.id)
        .await
        .expect("read")
        .expect("action");
    assert_eq!(read.body.kind, ActionKind::Image);
    assert_eq!(read.body.media, [FILE]);
    // Deleting the message hides the file again.
    store.delete_message(g, action.id).await.expect("delete");
    assert!(!store
        .media_visible_to(FILE, &user(2))
        .await
        .expect("visible"));

    // The first actionCreated event in the log.
    let logged = f.logged_events().await;
    let created = logged
        .iter()
        .find(|e| e.kind == EventKind::ActionCreated)
        .expect("event");
    let payload: serde_json::Value = serde_json::from_str(created.data()).expect("JSON");
    assert_eq!(payload["actionType"], "Image");
    assert_eq!(payload["isAttachment"], true);
    assert_eq!(payload["media"], serde_json::json!([FILE]));
}
