DROP TABLE instance_facts;
