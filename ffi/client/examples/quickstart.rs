//! The README's Rust example, kept compiling: sends one message and reads it
//! back. Run against a NameServer (default 127.0.0.1:9876, or `NAMESRV_ADDR`):
//!
//! ```text
//! cargo run -p mq --example quickstart
//! ```

use std::time::Duration;

use mq::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig};
use mq::{ConsumeFrom, PullConsumer, PullConsumerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let instance = ClientInstance::get_or_start(ClientConfig::new(&namesrv))?;
    let producer = Producer::start(instance.clone(), ProducerConfig::new("my_producers"))?;
    let sent = producer.send_blocking(&Message::new("Demo", "hello").with_tags("TagA"))?;
    println!("sent {} to queue {}", sent.msg_id, sent.queue.queue_id);

    let mut config = PullConsumerConfig::new("my_consumers");
    config.consume_from = ConsumeFrom::FirstOffset;
    let consumer = PullConsumer::start(instance.clone(), config)?;
    async_io::block_on(consumer.subscribe("Demo", "TagA || TagB"))?;
    for msg in consumer.poll_blocking(Duration::from_secs(3))? {
        println!("{} {:?}", msg.msg_id, String::from_utf8_lossy(&msg.body));
    }
    async_io::block_on(consumer.shutdown());
    async_io::block_on(producer.shutdown());
    instance.shutdown();
    Ok(())
}
