"""The notifier: alert events and acks → Telegram, Zalo OA, email and webhooks."""
