//! `Gossip.Read`: a cluster of one, this node, alive and leader, at the address clients reach
//! it on (so connection strings with `+discover` work too).

use std::{net::SocketAddr, time::SystemTime};

use uuid::Uuid;

use crate::{
    proto::gossip::{ClusterInfo, EndPoint, MemberInfo, member_info::VNodeState},
    wire,
};

/// The cluster as this node reports it; `instance` identifies the server process.
pub fn cluster_info(instance: Uuid, advertised: SocketAddr) -> ClusterInfo {
    let ticks = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().saturating_mul(u128::from(wire::TICKS_PER_MICROSECOND)));
    let member = MemberInfo {
        instance_id: Some(wire::wire_uuid(instance, false)),
        time_stamp: i64::try_from(ticks).unwrap_or(i64::MAX),
        state: VNodeState::Leader as i32,
        is_alive: true,
        http_end_point: Some(EndPoint {
            address: advertised.ip().to_string(),
            port: u32::from(advertised.port()),
        }),
    };
    ClusterInfo { members: vec![member] }
}
