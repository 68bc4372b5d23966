//! Temporary stand-in until the schedule module lands.
#![allow(missing_docs, unreachable_pub)]
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every { seconds: u64 },
    Cron(CronSchedule),
}
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error("invalid")]
    Invalid,
}

impl Schedule {
    pub fn every(seconds: u64) -> Result<Schedule, ScheduleError> {
        if seconds == 0 { return Err(ScheduleError::Invalid); }
        Ok(Schedule::Every { seconds })
    }
    pub fn cron(_e: &str, _z: &str) -> Result<Schedule, ScheduleError> { Err(ScheduleError::Invalid) }
    pub fn from_parts(r: Option<i64>, _c: Option<&str>, _z: Option<&str>) -> Result<Schedule, ScheduleError> {
        Schedule::every(r.and_then(|r| u64::try_from(r).ok()).ok_or(ScheduleError::Invalid)?)
    }
    pub fn first_run_at(&self, now: DateTime<Utc>) -> DateTime<Utc> { now }
    pub fn next_after(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let Schedule::Every { seconds } = self else { return now };
        let step = TimeDelta::seconds(*seconds as i64);
        let mut next = due + step;
        while next <= now { next += step; }
        next
    }
    pub fn to_parts(&self) -> (Option<i64>, Option<String>, Option<String>) {
        match self { Schedule::Every { seconds } => (Some(*seconds as i64), None, None), Schedule::Cron(_) => (None, None, None) }
    }
}
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
}
impl Schedule {
    pub fn upcoming(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new(); let mut t = from;
        for _ in 0..count { t = self.next_after(t, t); out.push(t); }
        out
    }
}
