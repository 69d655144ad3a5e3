-- Instance events take GitLab's entity type.
UPDATE audit_events SET entity_type = 'Gitlab::Audit::InstanceScope' WHERE entity_type = 'Instance';
