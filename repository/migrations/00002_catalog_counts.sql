-- The home page's counts, shared by every replica: one replica at a time
-- recounts (the one that claims the row, see Catalog.Counts) and the others
-- read the row by its primary key. Counting a million copies costs MariaDB
-- a good part of a second; done by each replica for itself, that cost grew
-- with the number of replicas.
--
-- (Triggers that keep the counts as rows change would make even the
-- recount unnecessary, but go-mysql-server, the embedded engine, cannot run
-- a trigger inside a transaction.)

-- +goose Up
CREATE TABLE IF NOT EXISTS catalog_counts (
    id               TINYINT     NOT NULL,
    books            BIGINT      NOT NULL,
    authors          BIGINT      NOT NULL,
    genres           BIGINT      NOT NULL,
    copies           BIGINT      NOT NULL,
    copies_available BIGINT      NOT NULL,
    counted_at       DATETIME(6) NOT NULL, -- when the figures were counted
    claimed_until    DATETIME(6) NULL,     -- a replica is recounting until then
    PRIMARY KEY (id)
) ENGINE=InnoDB;

-- Counted long ago: the first reader recounts.
INSERT IGNORE INTO catalog_counts (id, books, authors, genres, copies, copies_available, counted_at)
VALUES (1, 0, 0, 0, 0, 0, '2000-01-01 00:00:00');

-- +goose Down
DROP TABLE IF EXISTS catalog_counts;
