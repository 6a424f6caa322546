"""PingSource and KafkaSource: `controller` follows the objects, `runners` deliver, `cron`
reads PingSource schedules."""
