from django.db import migrations, models

FTS = "CREATE VIRTUAL TABLE notes_noteindex USING fts5(title, body)"
TRIGGERS = [
    "CREATE TRIGGER notes_note_fts_insert AFTER INSERT ON notes_note BEGIN "
    "INSERT INTO notes_noteindex(rowid, title, body) VALUES (NEW.id, NEW.title, NEW.body); END",
    "CREATE TRIGGER notes_note_fts_update AFTER UPDATE ON notes_note BEGIN "
    "UPDATE notes_noteindex SET title = NEW.title, body = NEW.body WHERE rowid = NEW.id; END",
    "CREATE TRIGGER notes_note_fts_delete AFTER DELETE ON notes_note BEGIN "
    "DELETE FROM notes_noteindex WHERE rowid = OLD.id; END",
]
VIEW = "CREATE VIEW notes_notestats AS SELECT id, length(body) AS size FROM notes_note"


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=100)),
                ("body", models.TextField()),
            ],
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="NoteIndex",
                    fields=[
                        ("note", models.OneToOneField(on_delete=models.CASCADE, primary_key=True, serialize=False,
                                                      to="notes.note", db_column="rowid")),
                        ("title", models.TextField()),
                        ("body", models.TextField()),
                    ],
                ),
                migrations.CreateModel(
                    name="NoteStats",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("size", models.IntegerField()),
                    ],
                ),
            ],
            database_operations=[
                migrations.RunSQL(FTS, "DROP TABLE notes_noteindex"),
                *[migrations.RunSQL(sql, f"DROP TRIGGER {sql.split()[2]}") for sql in TRIGGERS],
                migrations.RunSQL(VIEW, "DROP VIEW notes_notestats"),
            ],
        ),
    ]
