from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("blog", "0002_default_rows")]

    operations = [
        migrations.AddField(model_name="category", name="position", field=models.IntegerField(default=0)),
        migrations.RunSQL("CREATE VIEW blog_categorynames AS SELECT name FROM blog_category",
                          "DROP VIEW blog_categorynames"),
    ]
