UPDATE audit_events SET entity_type = 'Instance' WHERE entity_type = 'Gitlab::Audit::InstanceScope';
