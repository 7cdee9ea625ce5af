//! The busy table: the aggregates commands are running on, so that commands on one aggregate
//! run one at a time, and the commands waiting for them, in arrival order. A thread waits on a
//! condition variable, a task leaves its [`Waker`]; both wait in the same queue, so blocking and
//! async commands on an aggregate take turns in the order they came.
//!
//! The rule: a command marks all its aggregates at once, when none of them is busy and no
//! command ahead of it in the queue waits for any of them. So commands on several aggregates
//! never deadlock (a command waits only for running commands and for commands that came
//! earlier), and a command on a busy aggregate is never overtaken by a later one (no
//! starvation). The table's mutex is held only to check and mark, never across I/O.
//!
//! A task that gives up (its future dropped) leaves no trace: a waiting [`Acquire`] leaves the
//! queue and wakes those it held back; a [`BusyGuard`] unmarks its aggregates when dropped.

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Condvar, Mutex},
    task::{Context, Poll, Waker},
};

use super::cache::lock;

/// The aggregates commands are running on, and the commands waiting for them.
#[derive(Default)]
pub(crate) struct Busy {
    table: Mutex<Table>,
    /// Waiting threads sleep here.
    freed: Condvar,
}

#[derive(Default)]
struct Table {
    held: HashSet<String>,
    /// The waiting commands by ticket: in arrival order.
    queue: BTreeMap<u64, Waiter>,
    next_ticket: u64,
}

struct Waiter {
    ids: Vec<String>,
    /// The task to wake when it may go; `None` for a thread (woken by the condition variable),
    /// or for a task woken already and not polled since.
    waker: Option<Waker>,
    thread: bool,
}

/// Marks aggregates busy until dropped.
pub(crate) struct BusyGuard<'a> {
    busy: &'a Busy,
    ids: Vec<String>,
}

/// Waits, without blocking a thread, until a command's aggregates can be marked busy.
pub(crate) struct Acquire<'a> {
    busy: &'a Busy,
    ids: Vec<String>,
    /// Its place in the queue, once it had to wait.
    ticket: Option<u64>,
}

impl Table {
    /// Whether a command on `ids` may mark them now: none is held, and no command queued
    /// ahead of it (of those before `ticket`; of all, for a command not queued) wants one.
    fn may_take(&self, ids: &[String], ticket: Option<u64>) -> bool {
        if ids.iter().any(|id| self.held.contains(id)) {
            return false;
        }
        let ahead = self.queue.range(..ticket.unwrap_or(u64::MAX));
        ahead.flat_map(|(_, waiter)| &waiter.ids).all(|id| !ids.contains(id))
    }

    fn enqueue(&mut self, ids: Vec<String>, waker: Option<Waker>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let thread = waker.is_none();
        self.queue.insert(ticket, Waiter { ids, waker, thread });
        ticket
    }

    /// Takes out the wakers of the queued tasks that may go now, and says whether a queued
    /// thread may.
    fn ready(&mut self) -> (Vec<Waker>, bool) {
        if self.queue.is_empty() {
            return (Vec::new(), false); // the usual case, without building `claimed`
        }
        let mut claimed = HashSet::new();
        let mut ready = Vec::new();
        for (ticket, waiter) in &self.queue {
            let free = |id: &String| !self.held.contains(id) && !claimed.contains(id);
            if waiter.ids.iter().all(free) {
                ready.push(*ticket);
            }
            claimed.extend(&waiter.ids);
        }
        let mut wakers = Vec::new();
        let mut thread = false;
        for ticket in ready {
            let waiter = self.queue.get_mut(&ticket).expect("just seen");
            thread |= waiter.thread;
            wakers.extend(waiter.waker.take());
        }
        (wakers, thread)
    }
}

impl Busy {
    /// Waits on this thread until `ids` may be marked (see the module doc), and marks them.
    pub fn acquire(&self, ids: &[String]) -> BusyGuard<'_> {
        let mut table = lock(&self.table);
        if !table.may_take(ids, None) {
            let ticket = table.enqueue(ids.to_vec(), None);
            while !table.may_take(ids, Some(ticket)) {
                table = self.freed.wait(table).unwrap_or_else(|e| e.into_inner());
            }
            table.queue.remove(&ticket);
        }
        table.held.extend(ids.iter().cloned());
        BusyGuard { busy: self, ids: ids.to_vec() }
    }

    /// [`acquire`](Busy::acquire) as a future: it waits in the same queue, with its task's
    /// waker instead of a sleeping thread.
    pub fn acquire_async(&self, ids: &[String]) -> Acquire<'_> {
        Acquire { busy: self, ids: ids.to_vec(), ticket: None }
    }

    /// Commands waiting now.
    pub fn waiting(&self) -> usize {
        lock(&self.table).queue.len()
    }

    /// Wakes the waiters that may go now, after a change in `table` (released when this
    /// returns), outside its lock.
    fn wake_ready(&self, mut table: std::sync::MutexGuard<'_, Table>) {
        let (wakers, thread) = table.ready();
        drop(table);
        if thread {
            self.freed.notify_all();
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = BusyGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BusyGuard<'a>> {
        let this = &mut *self;
        let mut table = lock(&this.busy.table);
        if !table.may_take(&this.ids, this.ticket) {
            match this.ticket {
                None => {
                    this.ticket = Some(table.enqueue(this.ids.clone(), Some(cx.waker().clone())))
                }
                Some(ticket) => {
                    let waiter = table.queue.get_mut(&ticket).expect("a queued ticket");
                    match &waiter.waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => waiter.waker = Some(cx.waker().clone()),
                    }
                }
            }
            return Poll::Pending;
        }
        if let Some(ticket) = this.ticket.take() {
            table.queue.remove(&ticket);
        }
        table.held.extend(this.ids.iter().cloned());
        Poll::Ready(BusyGuard { busy: this.busy, ids: std::mem::take(&mut this.ids) })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            // It held back those behind it that want one of its aggregates.
            let mut table = lock(&self.busy.table);
            table.queue.remove(&ticket);
            self.busy.wake_ready(table);
        }
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut table = lock(&self.busy.table);
        for id in &self.ids {
            table.held.remove(id);
        }
        self.busy.wake_ready(table);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn poll<'a>(acquire: &mut Acquire<'a>, count: &Arc<Count>) -> Poll<BusyGuard<'a>> {
        let waker = Waker::from(Arc::clone(count));
        Pin::new(acquire).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn busy_waiters_go_in_arrival_order_and_a_later_one_does_not_overtake() {
        let busy = Busy::default();
        let held = busy.acquire(&ids(&["a"]));
        let (mut first, mut second) =
            (busy.acquire_async(&ids(&["a", "b"])), busy.acquire_async(&ids(&["b"])));
        let (woken1, woken2) = (Arc::default(), Arc::default());
        assert!(poll(&mut first, &woken1).is_pending());
        // `b` is free, but the command ahead wants it.
        assert!(poll(&mut second, &woken2).is_pending());
        assert_eq!(busy.waiting(), 2);
        drop(held);
        assert_eq!((woken1.0.load(Ordering::SeqCst), woken2.0.load(Ordering::SeqCst)), (1, 0));
        let Poll::Ready(guard) = poll(&mut first, &woken1) else { panic!("first may go") };
        assert!(poll(&mut second, &woken2).is_pending());
        drop(guard);
        assert_eq!(woken2.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut second, &woken2).is_ready());
        assert_eq!(busy.waiting(), 0);
    }

    #[test]
    fn busy_waiter_dropped_after_its_wake_passes_the_turn_on() {
        let busy = Busy::default();
        let held = busy.acquire(&ids(&["a"]));
        let (mut first, mut second) =
            (busy.acquire_async(&ids(&["a"])), busy.acquire_async(&ids(&["a"])));
        let (woken1, woken2) = (Arc::default(), Arc::default());
        assert!(poll(&mut first, &woken1).is_pending());
        assert!(poll(&mut second, &woken2).is_pending());
        drop(held);
        assert_eq!((woken1.0.load(Ordering::SeqCst), woken2.0.load(Ordering::SeqCst)), (1, 0));
        drop(first);
        assert_eq!(woken2.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut second, &woken2).is_ready());
    }

    #[test]
    fn busy_thread_waits_behind_a_task_and_goes_when_it_is_done() {
        let busy = Arc::new(Busy::default());
        let mut task = busy.acquire_async(&ids(&["a"]));
        let Poll::Ready(guard) = poll(&mut task, &Arc::default()) else { panic!("free") };
        let thread = {
            let busy = Arc::clone(&busy);
            std::thread::spawn(move || drop(busy.acquire(&ids(&["a"]))))
        };
        while busy.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(guard);
        thread.join().unwrap();
        assert!(lock(&busy.table).held.is_empty());
    }
}
