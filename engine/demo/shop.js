// The demo shop's own code: a small catalog, a cart in localStorage, and calls
// to the tracker. `clickstream(...)` works before the library has loaded: the
// snippet queues the calls and the library replays them. Calls that return
// something (decide, recommendations, forget) take a callback that gets the
// tracker once it is there.
(function () {
  var PRODUCTS = [
    { id: 'sneaker-trail', name: 'Trail sneakers', category: 'shoes', price: 89 },
    { id: 'sneaker-city', name: 'City sneakers', category: 'shoes', price: 75 },
    { id: 'boots-rain', name: 'Rain boots', category: 'rain-gear', price: 59 },
    { id: 'umbrella-storm', name: 'Storm umbrella', category: 'rain-gear', price: 25 },
    { id: 'jacket-rain', name: 'Rain jacket', category: 'rain-gear', price: 120 },
    { id: 'sunglasses', name: 'Sunglasses', category: 'summer', price: 45 },
    { id: 'hat-sun', name: 'Sun hat', category: 'summer', price: 30 },
    { id: 'tote-bag', name: 'Tote bag', category: 'accessories', price: 35 },
  ];
  var TOPICS = ['shoes', 'rain-gear', 'summer', 'offers', 'newsletter']; // engine/defaults/rules/demo.yaml
  var $ = function (selector) { return document.querySelector(selector); };
  var byId = function (id) { return PRODUCTS.filter(function (p) { return p.id === id; })[0]; };
  var money = function (n) { return '€' + n.toFixed(2); };
  var product = function (p) { return { id: p.id, category: p.category, price: p.price }; };
  var stored = function (key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) || fallback; } catch (e) { return fallback; }
  };
  var store = function (key, value) { localStorage.setItem(key, JSON.stringify(value)); };
  var escape = function (text) {
    return String(text).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
  };

  function card(p, button) {
    return '<li class="card"><a href="/demo/product.html?id=' + p.id + '">' + escape(p.name) + '</a>' +
      '<div class="price">' + money(p.price) + '</div>' + (button || '') + '</li>';
  }

  function list(selector, products) {
    var box = $(selector);
    if (!box) return;
    box.hidden = !products.length;
    box.querySelector('ul').innerHTML = products.map(function (p) { return card(p); }).join('');
  }

  // Recommendations from the engine; the box stays hidden when there are none.
  function recommended(selector, kind, options) {
    clickstream(function (tracker) {
      tracker.recommendations(kind, options).then(function (answer) {
        list(selector, (answer.items || []).map(function (item) { return byId(item.id); }).filter(Boolean));
      }).catch(function () { list(selector, []); });
    });
  }

  // "What the engine knows about you": the visitor's own export (their cookie is the
  // key), refreshed every few seconds so a newcomer can watch events arrive.
  function watchProfile() {
    var box = $('#you');
    if (!box) return;
    var line = function (label, value) {
      return '<dt>' + escape(label) + '</dt><dd>' + escape(value) + '</dd>';
    };
    var top = function (scores) {
      return Object.keys(scores || {}).sort(function (a, b) { return scores[b] - scores[a]; }).slice(0, 3)
        .map(function (k) { return k + ' ' + scores[k].toFixed(2); }).join(', ') || 'none yet';
    };
    function render(tracker, person) {
      var counts = person.counts || {};
      var value = person.value || {};
      box.querySelector('dl').innerHTML =
        line('visitor id', tracker.visitorId()) +
        line('known as', person.user_id ? person.traits.first_name || person.user_id : 'anonymous') +
        line('sessions', (person.sessions || {}).count || 0) +
        line('page views', counts.page_view || 0) +
        line('products viewed', counts.product_view || 0) +
        line('orders', (person.commerce || {}).orders || 0) +
        line('interests', top(person.interest_scores)) +
        line('segments', Object.keys(person.segments || {}).join(', ') || 'none') +
        line('value tier', value.tier || 'not a customer yet');
    }
    clickstream(function (tracker) {
      function refresh() {
        if (!tracker.visitorId() || document.hidden) return;
        fetch('/v1/profiles/' + encodeURIComponent(tracker.visitorId()) + '/export', { credentials: 'include' })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (data) { if (data && data.person) { box.hidden = false; render(tracker, data.person); } })
          .catch(function () {});
      }
      refresh();
      setInterval(refresh, 3000);
    });
  }

  function showCartCount() {
    var count = stored('demo_cart', []).reduce(function (n, line) { return n + line.qty; }, 0);
    $('#cart-count').textContent = count ? '(' + count + ')' : '';
    var user = stored('demo_user', null);
    $('#login-link').textContent = user ? 'Hi, ' + user.first_name : 'Log in';
  }

  var pages = {
    home: function () {
      $('#products').innerHTML = PRODUCTS.map(function (p) { return card(p); }).join('');
      recommended('#viewed', 'recently-viewed', { k: 4 });   // the engine's, across the person's devices
      recommended('#recommended', 'for-you', { k: 4 });
    },

    product: function () {
      var p = byId(new URLSearchParams(location.search).get('id')) || PRODUCTS[0];
      document.title = p.name + ' | Demo shop';
      $('#name').textContent = p.name;
      $('#category').textContent = p.category;
      $('#price').textContent = money(p.price);
      clickstream('productView', product(p));
      $('#add').onclick = function () {
        var cart = stored('demo_cart', []);
        var line = cart.filter(function (l) { return l.id === p.id; })[0];
        if (line) line.qty += 1; else cart.push({ id: p.id, qty: 1 });
        store('demo_cart', cart);
        clickstream('addToCart', product(p), 1);
        $('#status').textContent = p.name + ' is in your cart.';
        showCartCount();
      };
      recommended('#also-bought', 'also-bought', { item: p.id, k: 4 });
    },

    cart: function () {
      var cart = stored('demo_cart', []);
      var total = cart.reduce(function (sum, l) { return sum + l.qty * byId(l.id).price; }, 0);
      $('#lines').innerHTML = cart.map(function (l) {
        var p = byId(l.id);
        return card(p, '<div>× ' + l.qty + '</div><button class="secondary" data-remove="' + p.id + '">Remove</button>');
      }).join('') || '<li>Your cart is empty.</li>';
      $('#total').textContent = money(total);
      $('#checkout').disabled = !cart.length;
      $('#lines').onclick = function (e) {
        var id = e.target.getAttribute('data-remove');
        if (!id) return;
        var line = cart.filter(function (l) { return l.id === id; })[0];
        clickstream('removeFromCart', product(byId(id)), line.qty);
        store('demo_cart', cart.filter(function (l) { return l.id !== id; }));
        pages.cart();
        showCartCount();
      };
      $('#checkout').onclick = function () {
        var order = {
          id: 'order-' + Date.now().toString(36),
          revenue: total,
          items: cart.map(function (l) { var p = byId(l.id); return { id: p.id, qty: l.qty, price: p.price, category: p.category }; }),
        };
        clickstream('purchase', order);
        store('demo_cart', []);
        $('#status').textContent = 'Thank you! Your order ' + order.id + ' is on its way.';
        pages.cart();
        showCartCount();
      };
    },

    login: function () {
      var user = stored('demo_user', null);
      $('#logout').hidden = !user;
      $('#login').onsubmit = function (e) {
        e.preventDefault();
        var email = $('#email').value.trim();
        var first = $('#first-name').value.trim();
        if (!email) return;
        // A shop's back end signs the user id at login (HMAC-SHA256 by its identity secret):
        // the proof that makes identify link this browser to the account. The demo's
        // stand-in for that back end is POST /demo/login, which signs any e-mail.
        fetch('/demo/login', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: email }),
        }).then(function (r) {
          if (!r.ok) throw new Error('the demo login answered ' + r.status);
          return r.json();
        }).then(function (login) {
          store('demo_user', { email: email, first_name: first || email });
          clickstream('identify', email, { first_name: first, email: email }, { userHash: login.user_hash });
          $('#status').textContent = 'Logged in as ' + email + '.';
          $('#logout').hidden = false;
          showCartCount();
        }).catch(function (err) { $('#status').textContent = 'Could not log in: ' + err.message; });
      };
      $('#logout').onclick = function () {
        localStorage.removeItem('demo_user');
        clickstream('identify', null);
        $('#status').textContent = 'Logged out.';
        $('#logout').hidden = true;
        showCartCount();
      };
    },

    preferences: function () {
      var saved = stored('demo_prefs', { show: [], hide: [], do_not_personalize: false });
      var row = function (name, topic) {
        var checked = saved[name].indexOf(topic) >= 0 ? ' checked' : '';
        return '<label><input type="checkbox" name="' + name + '" value="' + topic + '"' + checked + '> ' + topic + '</label>';
      };
      $('#show').innerHTML += TOPICS.map(function (t) { return row('show', t); }).join('');
      $('#hide').innerHTML += TOPICS.map(function (t) { return row('hide', t); }).join('');
      $('#do-not-personalize').checked = saved.do_not_personalize;
      var checked = function (name) {
        return [].slice.call(document.querySelectorAll('input[name=' + name + ']:checked')).map(function (i) { return i.value; });
      };
      var say = function (text) { $('#status').textContent = text; };
      var preview = function (tracker) { tracker.decide(['hero'], { timeout: 0 }); };

      clickstream(function (tracker) {
        var allowed = tracker.permissions();
        $('#analytics').checked = allowed.analytics;
        $('#personalization').checked = allowed.personalization;
        $('#export').href = '/v1/profiles/' + encodeURIComponent(tracker.visitorId()) + '/export';

        $('#save').onclick = function () {
          var prefs = { show: checked('show'), hide: checked('hide'), do_not_personalize: $('#do-not-personalize').checked };
          store('demo_prefs', prefs);
          tracker.setPreference(prefs).then(function () {
            say('Saved. The banner below shows what you get now.');
            preview(tracker);
          }).catch(function (err) { say('Could not save: ' + err.message); });
        };
        $('#consent').onclick = function () {
          tracker.consent({ analytics: $('#analytics').checked, personalization: $('#personalization').checked });
          say('Your consent choices are saved.');
        };
        $('#forget').onclick = function () {
          tracker.forget().then(function () {
            localStorage.removeItem('demo_user');
            localStorage.removeItem('demo_viewed');
            localStorage.removeItem('demo_prefs');
            say('Everything we knew about you is erased.');
          }).catch(function (err) { say('Could not erase: ' + err.message); });
        };
        $('#opt-out').onclick = function () {
          tracker.optOut();
          say('You are opted out: nothing more is recorded.');
        };
      });
    },
  };

  showCartCount();
  pages[document.body.getAttribute('data-page')]();
  watchProfile();
})();
