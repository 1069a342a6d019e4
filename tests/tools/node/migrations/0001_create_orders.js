export const up = (pgm) => {
  pgm.createTable('orders', {
    id: 'id',
    total: { type: 'integer', notNull: true },
  });
};

export const down = (pgm) => {
  pgm.dropTable('orders');
};
