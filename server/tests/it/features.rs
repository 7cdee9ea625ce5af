//! ServerFeatures and Gossip: what the server advertises and how it describes itself.

use annal_server::proto::{
    gossip::{gossip_client::GossipClient, member_info::VNodeState},
    server_features::server_features_client::ServerFeaturesClient,
};

use crate::harness::{TestServer, empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_features_lists_exactly_the_served_methods_and_a_version() {
    let server = TestServer::start().await;
    let mut client = ServerFeaturesClient::new(server.channel().await);
    let methods = client.get_supported_methods(empty()).await.unwrap().into_inner();
    let version = methods.event_store_server_version;
    assert_eq!(version.split('.').filter(|p| p.parse::<u32>().is_ok()).count(), 3, "{version}");
    let mut listed: Vec<String> =
        methods.methods.iter().map(|m| format!("{}/{}", m.service_name, m.method_name)).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "event_store.client.gossip.gossip/read",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/create",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/delete",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/getinfo",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/list",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/read",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/replayparked",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/\
             restartsubsystem",
            "event_store.client.persistent_subscriptions.persistentsubscriptions/update",
            "event_store.client.server_features.serverfeatures/getsupportedmethods",
            "event_store.client.streams.streams/append",
            "event_store.client.streams.streams/batchappend",
            "event_store.client.streams.streams/delete",
            "event_store.client.streams.streams/read",
            "event_store.client.streams.streams/tombstone",
            "kurrentdb.protocol.v2.streams.streamsservice/appendsession",
        ]
    );
    for m in &methods.methods {
        let persistent = m.service_name.ends_with("persistentsubscriptions")
            && m.method_name != "restartsubsystem";
        let expected: &[&str] = if persistent { &["stream", "all"] } else { &[] };
        assert_eq!(m.features, expected, "{}/{}", m.service_name, m.method_name);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reports_one_alive_leader_at_the_listening_address() {
    let server = TestServer::start().await;
    let mut client = GossipClient::new(server.channel().await);
    let info = client.read(empty()).await.unwrap().into_inner();
    assert_eq!(info.members.len(), 1);
    let member = &info.members[0];
    assert!(member.is_alive);
    assert_eq!(member.state, VNodeState::Leader as i32);
    let endpoint = member.http_end_point.as_ref().unwrap();
    assert_eq!(
        (endpoint.address.as_str(), endpoint.port),
        ("127.0.0.1", u32::from(server.addr.port()))
    );
    server.stop().await.unwrap();
}
