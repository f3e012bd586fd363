-- 0004 Datasources, approved queries, query permissions and column masks.
-- Datasource passwords are stored only as SecretProtector ciphertext ("enc:<key id>:<base64>").

CREATE TABLE datasources (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    engine character varying(16) NOT NULL,
    sqlite_path character varying(1000),
    host character varying(255),
    port integer,
    database_name character varying(200),
    username character varying(200),
    password_protected character varying(2000),
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_datasources PRIMARY KEY (id),
    CONSTRAINT fk_datasources_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_datasources_project_id_name ON datasources (project_id, name);

CREATE TABLE approved_queries (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    datasource_id uuid NOT NULL,
    name character varying(200) NOT NULL,
    description character varying(2000) NOT NULL,
    sql text NOT NULL,
    parameters_json text NOT NULL,
    classifications_json character varying(1000) NOT NULL,
    row_cap integer NOT NULL,
    timeout_ms integer NOT NULL,
    version integer NOT NULL,
    status character varying(16) NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_approved_queries PRIMARY KEY (id),
    CONSTRAINT fk_approved_queries_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_approved_queries_datasources_datasource_id FOREIGN KEY (datasource_id) REFERENCES datasources (id) ON DELETE RESTRICT
);

CREATE UNIQUE INDEX ix_approved_queries_project_id_name ON approved_queries (project_id, name);

CREATE INDEX ix_approved_queries_datasource_id ON approved_queries (datasource_id);

CREATE TABLE query_permissions (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    query_id uuid NOT NULL,
    principal_type character varying(16) NOT NULL,
    principal character varying(100),
    can_view boolean NOT NULL,
    can_execute boolean NOT NULL,
    can_edit boolean NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_query_permissions PRIMARY KEY (id),
    CONSTRAINT fk_query_permissions_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_query_permissions_approved_queries_query_id FOREIGN KEY (query_id) REFERENCES approved_queries (id) ON DELETE CASCADE
);

CREATE INDEX ix_query_permissions_project_id_query_id ON query_permissions (project_id, query_id);

-- One grant per principal and query; COALESCE because an "all" grant has no principal and NULLs never collide.
CREATE UNIQUE INDEX ux_query_permissions_principal ON query_permissions (query_id, principal_type, COALESCE(principal, ''));

CREATE TABLE column_masks (
    id uuid NOT NULL,
    project_id uuid NOT NULL,
    datasource_id uuid NOT NULL,
    table_name character varying(128) NOT NULL,
    column_name character varying(128) NOT NULL,
    mask_type character varying(16) NOT NULL,
    show_first integer NOT NULL,
    show_last integer NOT NULL,
    visible_to_roles_json character varying(500) NOT NULL,
    classification character varying(64),
    created_by uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT pk_column_masks PRIMARY KEY (id),
    CONSTRAINT fk_column_masks_projects_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT fk_column_masks_datasources_datasource_id FOREIGN KEY (datasource_id) REFERENCES datasources (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_column_masks_datasource_id_table_name_column_name ON column_masks (datasource_id, table_name, column_name);

CREATE INDEX ix_column_masks_project_id ON column_masks (project_id);
