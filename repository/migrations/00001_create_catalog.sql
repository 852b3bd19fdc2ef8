-- The catalog of the LocalLibrary tutorial. The SQL stays in the subset that
-- MySQL 8, MariaDB 10.11 and go-mysql-server all accept. IF NOT EXISTS makes a
-- rerun after a half-applied migration safe: MySQL commits DDL implicitly.

-- +goose Up
CREATE TABLE IF NOT EXISTS author (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    first_name    VARCHAR(100) NOT NULL,
    last_name     VARCHAR(100) NOT NULL,
    date_of_birth DATE         NULL,
    date_of_death DATE         NULL,
    PRIMARY KEY (id),
    INDEX author_name_idx (last_name, first_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS genre (
    id   BIGINT       NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE INDEX genre_name_uq (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS language (
    id   BIGINT       NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE INDEX language_name_uq (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS book (
    id          BIGINT        NOT NULL AUTO_INCREMENT,
    title       VARCHAR(200)  NOT NULL,
    author_id   BIGINT        NULL,
    summary     VARCHAR(1000) NOT NULL,
    isbn        CHAR(13)      NOT NULL,
    language_id BIGINT        NULL,
    PRIMARY KEY (id),
    UNIQUE INDEX book_isbn_uq (isbn),
    INDEX book_title_idx (title, id),
    INDEX book_author_idx (author_id),
    INDEX book_language_idx (language_id),
    CONSTRAINT book_author_fk FOREIGN KEY (author_id) REFERENCES author (id) ON DELETE SET NULL,
    CONSTRAINT book_language_fk FOREIGN KEY (language_id) REFERENCES language (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS book_genre (
    book_id  BIGINT NOT NULL,
    genre_id BIGINT NOT NULL,
    PRIMARY KEY (book_id, genre_id),
    INDEX book_genre_genre_idx (genre_id),
    CONSTRAINT book_genre_book_fk FOREIGN KEY (book_id) REFERENCES book (id) ON DELETE CASCADE,
    CONSTRAINT book_genre_genre_fk FOREIGN KEY (genre_id) REFERENCES genre (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- status: m maintenance, o on loan, a available, r reserved. The status index
-- keeps the count of available copies an index-only scan.
CREATE TABLE IF NOT EXISTS book_instance (
    id       CHAR(36)     NOT NULL,
    book_id  BIGINT       NOT NULL,
    imprint  VARCHAR(200) NOT NULL,
    due_back DATE         NULL,
    status   CHAR(1)      NOT NULL DEFAULT 'm',
    PRIMARY KEY (id),
    INDEX book_instance_book_idx (book_id),
    INDEX book_instance_status_idx (status),
    CONSTRAINT book_instance_book_fk FOREIGN KEY (book_id) REFERENCES book (id) ON DELETE RESTRICT,
    CONSTRAINT book_instance_status_ck CHECK (status IN ('m', 'o', 'a', 'r'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS book_instance;
DROP TABLE IF EXISTS book_genre;
DROP TABLE IF EXISTS book;
DROP TABLE IF EXISTS language;
DROP TABLE IF EXISTS genre;
DROP TABLE IF EXISTS author;
