-- Reference data: the storefront's categories.
insert into categories (slug, name) values
    ('concerts', 'Concerts'),
    ('sports', 'Sports'),
    ('theatre', 'Theatre'),
    ('comedy', 'Comedy'),
    ('festivals', 'Festivals'),
    ('family', 'Family')
on conflict do nothing;
